//! Helpers for statements written once for both backends: multi-row
//! `VALUES` lists, bound arguments, and unique violations as conflicts.

use crate::{Result, StoreError};

/// Rows per multi-row statement (SQLite allows 32,766 parameters).
pub const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Splits `items` into chunks whose lengths are powers of two (at most
/// [`MAX_ROWS_PER_STATEMENT`]), so multi-row statements come in a few
/// shapes that stay in the prepared-statement cache instead of being
/// prepared anew for every batch size.
pub fn pow2_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let n = items.len().min(MAX_ROWS_PER_STATEMENT);
        let size = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let (head, tail) = items.split_at(size);
        items = tail;
        Some(head)
    })
}

/// `VALUES`-list placeholders for a multi-row statement: `rows` tuples of
/// `cols` parameters each, numbered from `$1`. Every value is bound, so the
/// statement text holds placeholders only.
pub(crate) fn values_list(rows: usize, cols: usize) -> String {
    values_list_from(1, rows, cols)
}

/// [`values_list`] numbered from `$first`, for a statement with several lists.
pub(crate) fn values_list_from(first: usize, rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + r * cols + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Adds one bound value to a statement's arguments.
pub(crate) fn bind<'t, T>(args: &mut sqlx::any::AnyArguments, value: T) -> Result<()>
where
    T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Arguments;
    args.add(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot bind a value: {e}")))
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn conflict_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return StoreError::Conflict(what());
    }
    StoreError::Database(e)
}

/// A statement's placeholders as SQLite is best given them. sqlx's SQLite
/// driver finds each `$N`'s argument by asking SQLite for the
/// placeholder's name, a linear search of the statement's names, so a
/// statement of P named placeholders costs O(P²) to bind (a third of a
/// campaign's issuance time at 256 rows a statement). Anonymous `?`
/// placeholders are bound in order at no cost: when the `$N` appear as
/// `$1, $2, …` in order, once each (as the multi-row statements here write
/// them), they become `?`. Any other statement, and every statement for
/// PostgreSQL, is left as it is.
pub(crate) fn positional(sql: String, conn: &sqlx::AnyConnection) -> String {
    if conn.backend_name() != "SQLite" {
        return sql;
    }
    to_anonymous(sql)
}

/// [`positional`] for a statement run on the pool of `store`.
pub(crate) fn positional_for(sql: String, store: &crate::Store) -> String {
    if store.backend() != crate::Backend::Sqlite {
        return sql;
    }
    to_anonymous(sql)
}

fn to_anonymous(sql: String) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut next = 1usize;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > start {
                match sql[start..j].parse::<usize>() {
                    Ok(n) if n == next => {
                        out.push_str(&sql[copied..i]);
                        out.push('?');
                        copied = j;
                        next += 1;
                    }
                    // Out of order or repeated: leave the statement alone.
                    _ => return sql,
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out.push_str(&sql[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_and_cover_everything() {
        for n in 0..600usize {
            let v: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = pow2_chunks(&v).collect();
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= 256)
            );
            assert_eq!(chunks.concat(), v);
        }
    }

    #[test]
    fn placeholders_in_order_become_anonymous() {
        assert_eq!(
            super::to_anonymous("INSERT INTO t VALUES ($1, $2),($3, $4)".into()),
            "INSERT INTO t VALUES (?, ?),(?, ?)"
        );
        assert_eq!(
            super::to_anonymous(format!("SELECT {}", super::values_list(3, 4)))
                .matches('?')
                .count(),
            12
        );
        // Repeated or out of order: unchanged.
        for s in ["SELECT $1, $1", "SELECT $2, $1", "SELECT $1, $3"] {
            assert_eq!(super::to_anonymous(s.into()), s);
        }
        // No placeholders, or a dollar that is not one.
        assert_eq!(super::to_anonymous("SELECT '$'".into()), "SELECT '$'");
    }
}
