/** The name users log in with; powerful inside its databases but not a superuser. */
export const USER_ROLE = 'cloud_admin';

/** The platform's own superuser. It may only connect over the private unix socket. */
export const SYSTEM_ROLE = 'lampion_system';
