/** The name users log in with; powerful inside its databases but not a superuser. */
export const USER_ROLE = 'cloud_admin';
