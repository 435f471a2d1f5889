//! Which rows a listing asks for: the API's filters, already checked.

use super::entry::LoggedRequest;

/// The most rows one page holds.
pub const MAX_PAGE: u32 = 200;

/// A page of the log: every filter is optional; rows come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Created at or after (unix milliseconds).
    pub from_ms: Option<i64>,
    /// Created before (unix milliseconds).
    pub to_ms: Option<i64>,
    /// The model that served; for a request no model served (refused, or every attempt
    /// failed), the one asked for.
    pub model: Option<String>,
    /// Which outcomes.
    pub status: StatusFilter,
    /// Only this API key's requests.
    pub key_id: Option<String>,
    /// Only this user's requests.
    pub user_id: Option<String>,
    /// With `user_id`, also these teams' requests (a member's view: their own rows and their
    /// teams'). Ignored without `user_id`.
    pub teams: Vec<String>,
    /// Only rows after this one in the listing's order: the previous page's `next`.
    pub before: Option<Cursor>,
    /// At most this many rows (1 to `MAX_PAGE`, 200).
    pub limit: u32,
}

/// A place in a listing, which runs newest first: by arrival time, then by id (rows of one
/// millisecond). The API shows it as `CREATED_AT_ID` (`1765000000000_42`): opaque to
/// clients, who pass a page's `next` back as `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The row's `created_at` (unix milliseconds).
    pub created_at_ms: i64,
    /// The row's id.
    pub id: i64,
}

impl Cursor {
    /// The place of `row`.
    pub fn of(row: &LoggedRequest) -> Self {
        Self {
            created_at_ms: row.created_at,
            id: row.id,
        }
    }

    /// Whether `row` comes after this place (is older).
    pub fn is_after(self, row: &LoggedRequest) -> bool {
        (row.created_at, row.id) < (self.created_at_ms, self.id)
    }

    /// Read one as the API shows it.
    pub fn parse(text: &str) -> Option<Self> {
        let (created_at, id) = text.split_once('_')?;
        Some(Self {
            created_at_ms: created_at.parse().ok().filter(|ms: &i64| *ms >= 0)?,
            id: id.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.created_at_ms, self.id)
    }
}

/// Which outcomes a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatusFilter {
    /// Every row.
    #[default]
    Any,
    /// Answered, with no error (a stream that failed after its first byte is an error).
    Ok,
    /// Refused or failed, before or after the first byte.
    Error,
    /// This HTTP status.
    Code(u16),
}

impl StatusFilter {
    /// Whether a row with this status and error code passes.
    pub fn admits(self, status: u16, error_code: Option<&str>) -> bool {
        let ok = status < 400 && error_code.is_none();
        match self {
            StatusFilter::Any => true,
            StatusFilter::Ok => ok,
            StatusFilter::Error => !ok,
            StatusFilter::Code(code) => status == code,
        }
    }
}

impl LogQuery {
    /// Whether `row` is on this listing (the memory store's filter; SQL says the same).
    pub fn admits(&self, row: &LoggedRequest) -> bool {
        let is = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|want| have == Some(want))
        };
        self.from_ms.is_none_or(|from| row.created_at >= from)
            && self.to_ms.is_none_or(|to| row.created_at < to)
            && is(
                &self.model,
                row.model.as_deref().or(row.requested_model.as_deref()),
            )
            && self.status.admits(row.status, row.error_code.as_deref())
            && is(&self.key_id, row.key_id.as_deref())
            && self.owns(row)
            && self.before.is_none_or(|before| before.is_after(row))
    }

    /// Whether `row` is the listed user's own or one of the listed teams'.
    pub fn owns(&self, row: &LoggedRequest) -> bool {
        let Some(user) = &self.user_id else {
            return true;
        };
        row.user_id == *user
            || row
                .team_id
                .as_ref()
                .is_some_and(|team| self.teams.contains(team))
    }

    /// The page size to use: `limit` within 1 to `MAX_PAGE` (200).
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_shows() {
        let cursor = Cursor {
            created_at_ms: 1_765_000_000_000,
            id: 42,
        };
        assert_eq!(cursor.to_string(), "1765000000000_42");
        assert_eq!(Cursor::parse("1765000000000_42"), Some(cursor));
        for bad in ["", "42", "_42", "1_", "-1_2", "a_b", "1_2_3"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
