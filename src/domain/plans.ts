/**
 * Plans: what an organization may have and what it pays per unit. Limits are enforced where the
 * resource is made (a fourth project on free is refused); prices feed the usage estimate.
 */
export interface Plan {
  name: 'free' | 'dev' | 'pro';
  /** null: no limit. */
  max_projects: number | null;
  max_branches_per_project: number | null;
  max_compute_cu: number;
  /** Price of one compute-unit hour. */
  cu_hour_usd: number;
  storage_gb_month_usd: number;
  transfer_gb_usd: number;
  /** API requests a minute per key (LAMPION_RATE_LIMITS overrides). */
  api_requests_per_minute: number;
}

export const PLANS: readonly Plan[] = [
  { name: 'free', max_projects: 3, max_branches_per_project: 10, max_compute_cu: 2, cu_hour_usd: 0, storage_gb_month_usd: 0, transfer_gb_usd: 0, api_requests_per_minute: 600 },
  { name: 'dev', max_projects: 20, max_branches_per_project: 100, max_compute_cu: 8, cu_hour_usd: 0.106, storage_gb_month_usd: 0.35, transfer_gb_usd: 0.09, api_requests_per_minute: 1200 },
  { name: 'pro', max_projects: null, max_branches_per_project: null, max_compute_cu: 16, cu_hour_usd: 0.16, storage_gb_month_usd: 0.3, transfer_gb_usd: 0.09, api_requests_per_minute: 3000 },
];

export type PlanName = Plan['name'];
export const PLAN_NAMES = PLANS.map((p) => p.name) as [PlanName, ...PlanName[]];

export function planNamed(name: string): Plan {
  return PLANS.find((p) => p.name === name) ?? PLANS[0];
}

/** Why one more project is refused on the plan, or undefined. */
export function projectLimitReached(plan: Plan, existing: number): string | undefined {
  if (plan.max_projects === null || existing < plan.max_projects) return undefined;
  return `the ${plan.name} plan allows ${plan.max_projects} projects (max_projects); this organization has ${existing}`;
}
