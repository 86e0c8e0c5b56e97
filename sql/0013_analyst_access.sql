-- Per-tenant read access for analysts (issue 13; docs/analysts.md, "Access").
--
-- `hub_analyst` is a group role (NOLOGIN) that holds every grant analysts get: USAGE on schema
-- accounting, SELECT on its tenant-scoped tables (under row-level security) and on its
-- tenant-filtered views. Nothing on schema hub (credentials live in hub.accounting_configs) or on
-- analytics_store (the unfiltered materialized views), no write anywhere. `hub analysts grant`
-- makes login roles members of it and lists each one's tenants in hub.analyst_grants (0012).
--
-- Privileges: the hub's database user runs this, as every migration, and owns the accounting
-- tables. Creating hub_analyst needs CREATEROLE (or superuser), once per server: roles belong to
-- the server, not to a database, so another hub database on the same server reuses it. Where the
-- hub's user may not have CREATEROLE, an administrator runs first
--     CREATE ROLE hub_analyst NOLOGIN; GRANT hub_analyst TO <hub user> WITH ADMIN OPTION;
-- (`hub analysts grant` itself still needs CREATEROLE, to create the login roles.)

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hub_analyst') THEN
        CREATE ROLE hub_analyst NOLOGIN;
        COMMENT ON ROLE hub_analyst IS
            'Accounting hub: read-only analyst access; members see the tenants '
            'hub.analyst_grants lists (hub analysts grant / revoke).';
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;  -- another database on this server created it at the same moment
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'creating the group role hub_analyst needs CREATEROLE, which % lacks',
            current_user
        USING HINT = format('As an administrator: ALTER ROLE %I CREATEROLE; or CREATE ROLE '
                            'hub_analyst NOLOGIN; GRANT hub_analyst TO %I WITH ADMIN OPTION;',
                            current_user, current_user);
END $$;

-- The login roles `hub analysts grant` created: `hub analysts revoke` drops only these, and only
-- these can hold grants (a role made by hand is not the hub's to change or drop).
CREATE TABLE hub.analyst_roles (
    role_name        text        PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    password_set_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE hub.analyst_roles IS
    'Login roles created by `hub analysts grant` (members of hub_analyst); their tenants are in '
    'hub.analyst_grants. Passwords are never stored here.';
ALTER TABLE hub.analyst_grants
    ADD CONSTRAINT analyst_grants_role_fkey FOREIGN KEY (role_name)
        REFERENCES hub.analyst_roles (role_name) ON DELETE CASCADE;

-- Grants the analyst group exactly what it may read in schema accounting, and nothing else
-- there; returns what it decided for each relation. Every migration that adds or replaces an
-- analyst-facing table or view ends with `SELECT hub.grant_analyst_reads();` (a replaced view
-- loses its grants). Nothing is granted by default privileges: a new object stays unreadable to
-- analysts until this runs and finds it safe, never the other way round.
--   table with a tenant_id column: row-level security on, policy `analyst_tenant_rows`, SELECT;
--   view with security_invoker: SELECT (it reads its tables as the analyst, under their RLS);
--   security_barrier view that calls hub.can_see_tenant or hub.granted_tenants: SELECT (it
--   filters the rows itself);
--   anything else (materialized views cannot have RLS, a view that filters nothing, a table
--   without tenant_id): no privilege at all.
-- The policy applies to PUBLIC rather than to hub_analyst: the effect is the same for analysts,
-- any other role given SELECT by hand sees no tenant's rows until it is granted some, and a
-- dump restores onto a server that has no hub_analyst yet. The tables' owner (the hub) is not
-- subject to RLS (no FORCE), so imports are unaffected.
CREATE FUNCTION hub.grant_analyst_reads()
RETURNS TABLE (relation text, analyst_access text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    item record;
    tenant_functions constant name[] := '{can_see_tenant, granted_tenants, sees_every_tenant}';
    -- hub.can_see_tenant(tenant_id) in the form evaluated once per query (InitPlans), not once
    -- per row, which also lets `tenant_id = …` use the tables' indexes (as the views of 0012).
    policy_qual constant text := '(SELECT hub.sees_every_tenant()) '
        'OR tenant_id = ANY ((SELECT hub.granted_tenants())::text[])';
    -- The same as PostgreSQL prints it back (pg_get_expr): a policy that reads so is up to
    -- date and left alone (replacing it would lock the table). Should a later PostgreSQL
    -- print it otherwise, the policy is merely created again each time.
    policy_printed constant text := '(( SELECT hub.sees_every_tenant() AS sees_every_tenant) '
        'OR (tenant_id = ANY (( SELECT hub.granted_tenants() AS granted_tenants)::text[])))';
BEGIN
    GRANT USAGE ON SCHEMA accounting TO hub_analyst;
    -- The tenant functions of 0012 run as the reader in the policies and views: EXECUTE is
    -- PUBLIC's by default, granted here in case that default was taken away. (No USAGE on
    -- schema hub: policies and views hold the functions by oid, never look them up by name.)
    FOR item IN SELECT p.oid::regprocedure AS function FROM pg_proc p
                WHERE p.pronamespace = 'hub'::regnamespace AND p.proname = ANY (tenant_functions)
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO hub_analyst', item.function);
    END LOOP;
    REVOKE ALL ON SCHEMA hub FROM hub_analyst;
    IF to_regnamespace('analytics_store') IS NOT NULL THEN
        REVOKE ALL ON SCHEMA analytics_store FROM hub_analyst;
    END IF;
    -- A server where CONNECT was taken from PUBLIC: give it to the group, where the hub may.
    IF has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO hub_analyst', current_database());
    END IF;

    FOR item IN
        SELECT c.oid::regclass AS rel, c.relkind, c.relrowsecurity,
               EXISTS (SELECT FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                         AND NOT a.attisdropped) AS has_tenant,
               EXISTS (SELECT FROM pg_options_to_table(c.reloptions) o
                       WHERE o.option_name = 'security_invoker'
                         AND lower(o.option_value) IN ('true', 'on', 'yes', '1')) AS invoker,
               EXISTS (SELECT FROM pg_options_to_table(c.reloptions) o
                       WHERE o.option_name = 'security_barrier'
                         AND lower(o.option_value) IN ('true', 'on', 'yes', '1')) AS barrier,
               EXISTS (SELECT FROM pg_rewrite r
                       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                       WHERE r.ev_class = c.oid
                         AND d.refclassid = 'pg_proc'::regclass
                         AND d.refobjid IN (SELECT p.oid FROM pg_proc p
                                            WHERE p.pronamespace = 'hub'::regnamespace
                                              AND p.proname IN ('can_see_tenant',
                                                                'granted_tenants'))) AS filtered
        FROM pg_class c
        WHERE c.relnamespace = 'accounting'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        ORDER BY c.relname
    LOOP
        relation := item.rel::text;
        EXECUTE format('REVOKE ALL ON %s FROM hub_analyst', item.rel);
        IF item.relkind IN ('r', 'p') AND item.has_tenant THEN
            -- ENABLE takes an exclusive lock even when RLS is on already: only when needed.
            IF NOT item.relrowsecurity THEN
                EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', item.rel);
            END IF;
            IF NOT EXISTS (SELECT FROM pg_policy p
                           WHERE p.polrelid = item.rel AND p.polname = 'analyst_tenant_rows'
                             AND p.polcmd = 'r' AND p.polpermissive AND p.polroles = '{0}'
                             AND pg_get_expr(p.polqual, p.polrelid) = policy_printed) THEN
                EXECUTE format('DROP POLICY IF EXISTS analyst_tenant_rows ON %s', item.rel);
                EXECUTE format('CREATE POLICY analyst_tenant_rows ON %s AS PERMISSIVE FOR SELECT '
                               'TO PUBLIC USING (%s)', item.rel, policy_qual);
            END IF;
            EXECUTE format('GRANT SELECT ON %s TO hub_analyst', item.rel);
            analyst_access := 'SELECT, rows of granted tenants (row-level security)';
        ELSIF item.relkind = 'v' AND item.invoker THEN
            EXECUTE format('GRANT SELECT ON %s TO hub_analyst', item.rel);
            analyst_access := 'SELECT, view run as the reader (its tables'' RLS applies)';
        ELSIF item.relkind = 'v' AND item.barrier AND item.filtered THEN
            EXECUTE format('GRANT SELECT ON %s TO hub_analyst', item.rel);
            analyst_access := 'SELECT, security-barrier view filtered by tenant';
        ELSE
            analyst_access := CASE
                WHEN item.relkind = 'm' THEN 'none: a materialized view cannot filter by tenant'
                WHEN item.relkind = 'v' THEN 'none: a view neither security_invoker nor a '
                                             'security_barrier filtered by tenant'
                ELSE 'none: no tenant_id column' END;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION hub.grant_analyst_reads() FROM PUBLIC;
COMMENT ON FUNCTION hub.grant_analyst_reads() IS
    'Grants hub_analyst SELECT on the accounting tables (with row-level security by tenant) and '
    'tenant-filtered views, nothing else; run by every migration that adds analyst objects.';

SELECT hub.grant_analyst_reads();
