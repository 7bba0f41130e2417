//! The `sql` block, for SQL databases only (an HTTP or Redis span never gets one).

use std::borrow::Cow;

use xray_model::Sql;
use xray_model::limits::{MAX_STRING_CHARS, limit_string, strip_password};

use crate::keys::{K, Known};

/// `db.system` / `db.system.name` values of SQL databases (old and new conventions).
const SQL_SYSTEMS: &[&str] = &[
    "db2",
    "ibm.db2",
    "derby",
    "hive",
    "h2",
    "hsqldb",
    "mariadb",
    "mssql",
    "microsoft.sql_server",
    "mysql",
    "oracle",
    "oracle.db",
    "postgresql",
    "cockroachdb",
    "sqlite",
    "teradata",
    "trino",
    "clickhouse",
    "redshift",
    "aws.redshift",
    "other_sql",
];

/// The SQL database system of the span, if it is one.
pub(crate) fn sql_system<'a>(known: &Known<'a>) -> Option<&'a str> {
    if !known.has(K::DbSystemName) && !known.has(K::DbSystem) {
        return None;
    }
    [K::DbSystemName, K::DbSystem]
        .iter()
        .filter_map(|&k| known.peek_str(k))
        .find(|s| {
            // The conventions' values are lower case: an exact match first.
            SQL_SYSTEMS.contains(s) || SQL_SYSTEMS.iter().any(|sql| sql.eq_ignore_ascii_case(s))
        })
}

/// The host part of a `scheme://user:password@host:port/db` connection string.
pub(crate) fn connection_host(conn: &str) -> Option<&str> {
    let conn = conn.strip_prefix("jdbc:").unwrap_or(conn);
    let rest = &conn[conn.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#', ';']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    (!host.is_empty()).then_some(host)
}

/// The `sql` block of a span on an SQL database `system`; passwords never leave.
pub(crate) fn sql_block<'a>(known: &mut Known<'a>, system: &'a str) -> Sql<'a> {
    known.first_str(&[K::DbSystemName, K::DbSystem]);
    let mut sql = Sql {
        database_type: Some(Cow::Borrowed(system)),
        sanitized_query: known
            .first_str(&[K::DbQueryText, K::DbStatement])
            .map(Cow::Borrowed),
        ..Sql::default()
    };
    if let Some(user) = known.peek_str(K::DbUser).filter(|u| !u.is_empty()) {
        sql.user = Some(limit_string(Cow::Borrowed(user)));
        if user.chars().count() <= MAX_STRING_CHARS {
            known.mark(K::DbUser);
        }
    }
    if let Some(conn) = known
        .peek_str(K::DbConnectionString)
        .filter(|c| !c.is_empty())
    {
        // The connection string is consumed even when it held a password: the password
        // is the one thing that must not reach X-Ray, in any field.
        known.mark(K::DbConnectionString);
        let clean = strip_password(conn);
        if conn.contains("://") {
            sql.url = Some(clean);
        } else {
            sql.connection_string = Some(clean);
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_connection_strings() {
        assert_eq!(
            connection_host("postgres://u:p@db.local:5432/shop"),
            Some("db.local")
        );
        assert_eq!(connection_host("jdbc:mysql://db:3306"), Some("db"));
        assert_eq!(connection_host("mysql://[::1]:3306/x"), Some("::1"));
        assert_eq!(connection_host("Server=db;Password=x"), None);
        assert_eq!(connection_host("x://"), None);
    }
}
