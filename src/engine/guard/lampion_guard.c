/*
 * lampion_guard -- keep CREATEROLE users away from the host.
 *
 * The platform gives the customer's `cloud_admin` role CREATEDB CREATEROLE so
 * that it can manage its own roles and databases.  In PostgreSQL 15 a
 * CREATEROLE role may grant membership in ANY non-superuser role, including
 * the predefined roles below, which are shell/host-filesystem access in
 * disguise:
 *
 *     GRANT pg_execute_server_program TO cloud_admin;
 *     COPY (SELECT 1) TO PROGRAM 'sh -c ...';        -- runs as the OS user
 *
 * (PostgreSQL 16 closed this by requiring ADMIN OPTION; 15 did not.)
 *
 * This module, loaded through shared_preload_libraries, intercepts the three
 * statements that can add a member to a role and refuses them for
 * non-superusers when the role gaining members is, or is itself a member of,
 * a protected role:
 *
 *   GRANT <role> TO ...                        (GrantRoleStmt)
 *   CREATE ROLE ... IN ROLE|IN GROUP <role>    (CreateRoleStmt "addroleto")
 *   ALTER GROUP <role> ADD USER ...            (AlterRoleStmt, action +1)
 *
 * Superusers (the platform itself) are not affected.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static const char *const protected_roles[] = {
	"pg_execute_server_program",	/* COPY ... TO/FROM PROGRAM */
	"pg_read_server_files",		/* COPY FROM file, pg_read_file(), ... */
	"pg_write_server_files",		/* COPY TO file, lo_export(), ... */
};

/*
 * Would membership in `roleid` lead to a protected role?  is_member_of_role()
 * follows memberships regardless of INHERIT, so this also catches a role that
 * could merely SET ROLE to a protected one.
 */
static bool
role_is_protected(Oid roleid)
{
	/* Unknown roles and superuser roles: core already rejects those. */
	if (!OidIsValid(roleid) || superuser_arg(roleid))
		return false;
	for (int i = 0; i < lengthof(protected_roles); i++)
	{
		Oid			prot = get_role_oid(protected_roles[i], true);

		if (OidIsValid(prot) && is_member_of_role(roleid, prot))
			return true;
	}
	return false;
}

static bool
rolespec_is_protected(RoleSpec *spec)
{
	/* PUBLIC is not a real role; core rejects it on its own. */
	if (spec == NULL || spec->roletype == ROLESPEC_PUBLIC)
		return false;
	return role_is_protected(get_rolespec_oid(spec, true));
}

static void
deny(const char *rolename)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to grant role \"%s\"", rolename),
			 errhint("Membership in pg_execute_server_program, pg_read_server_files "
					 "and pg_write_server_files is reserved for the platform.")));
}

static void
check_statement(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_GrantRoleStmt:
			{
				GrantRoleStmt *stmt = (GrantRoleStmt *) parsetree;

				if (!stmt->is_grant)
					break;		/* REVOKE is always fine */
				foreach(lc, stmt->granted_roles)
				{
					AccessPriv *priv = lfirst_node(AccessPriv, lc);

					if (priv->priv_name &&
						role_is_protected(get_role_oid(priv->priv_name, true)))
						deny(priv->priv_name);
				}
				break;
			}
		case T_CreateRoleStmt:
			{
				CreateRoleStmt *stmt = (CreateRoleStmt *) parsetree;

				foreach(lc, stmt->options)
				{
					DefElem    *opt = lfirst_node(DefElem, lc);
					ListCell   *rc;

					if (strcmp(opt->defname, "addroleto") != 0)
						continue;
					foreach(rc, (List *) opt->arg)
					{
						RoleSpec   *spec = lfirst_node(RoleSpec, rc);

						if (rolespec_is_protected(spec))
							deny(get_rolespec_name(spec));
					}
				}
				break;
			}
		case T_AlterRoleStmt:
			{
				AlterRoleStmt *stmt = (AlterRoleStmt *) parsetree;

				/* ALTER GROUP x ADD USER ... (core 15.x also rejects this) */
				if (stmt->action == +1 && rolespec_is_protected(stmt->role))
					deny(get_rolespec_name(stmt->role));
				break;
			}
		default:
			break;
	}
}

static void
lampion_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	if (!superuser())
		check_statement(pstmt->utilityStmt);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
_PG_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = lampion_ProcessUtility;
}
