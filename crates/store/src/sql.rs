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
}
