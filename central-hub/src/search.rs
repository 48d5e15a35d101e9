//! Search (检索): business files by person id, name, business number,
//! employer, business type, category, organisation and business date,
//! combined, sorted and paged, and only within the caller's [`Scope`]: a
//! file is counted and returned only when its organisation or its batch's
//! district lies in one of the scope's subtrees (the rule of
//! `GET /api/v1/files/{id}`, so every hit opens).
//!
//! How each criterion finds its rows (measured on a million business files
//! and ten million pages by `benches/search.rs`):
//! - person id, employer id: equality on their indexes (a person id is
//!   upper-cased, as stored);
//! - business number: equality, or a prefix range when it ends in `*`;
//! - name: any substring of at least [`MIN_NAME_CHARS`] characters, through
//!   the `name_bigrams` index (migration 8, kept by triggers), keyed by
//!   (bigram, date, file) and carrying each file's organisation and batch
//!   district: the query's rarest bigram gives the candidates, each other
//!   bigram must be there too (primary-key lookups), and `instr` on the
//!   file's row confirms a query of three or more characters. A
//!   two-character query such as 三丰 is one index range, read in date
//!   order and filtered by scope in the index, so a page of a name shared
//!   by twenty thousand files reads twenty rows (a trigram index could not
//!   answer it at all; one entry per bigram without the date and scope
//!   made such a page read every candidate's row: p99 211 ms against 4 ms);
//! - organisation (its whole subtree), dates, business type, category:
//!   filters; without any of the above they run on the (organisation,
//!   date) or (date) index.
//!
//! The first of person id, business number, name, employer id that is
//! given drives the query; the others filter its rows without an index
//! (`+column`), so the plan does not rest on SQLite's guesses about
//! tables it has no statistics for.
//!
//! `total` counts at most [`TOTAL_CAP`] hits, shown as "10,000+"
//! (`total_capped`): counting every file of a common name or of a year of a
//! whole city would cost a scan for a number nobody reads, and pages reach
//! only that far — narrow the search to see more.
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use crate::users::Scope;

/// Hits per page unless the query asks otherwise, and the most it may ask.
pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;

/// The most hits counted; more are reported as this with `total_capped`.
pub const TOTAL_CAP: u64 = 10_000;

/// The shortest name query: one bigram.
pub const MIN_NAME_CHARS: usize = 2;

/// The order of hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Newest business date first (files without a date last).
    #[default]
    DateDesc,
    DateAsc,
    BusinessNumber,
}

impl Sort {
    fn order_by(self, table: &str) -> String {
        match self {
            Sort::DateDesc => format!("{table}.date DESC, {table}.id DESC"),
            Sort::DateAsc => format!("{table}.date ASC, {table}.id ASC"),
            Sort::BusinessNumber => format!("{table}.business_number ASC, {table}.id ASC"),
        }
    }
}

/// What to look for: every criterion given must hold. Empty strings count
/// as not given (a web form sends its empty fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// The 18-character identity number, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// Any part of the person's name, at least two characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Exactly, or every number starting with it when it ends in `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// An organisation code: files of it and everything below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Business dates from this day (YYYY-MM-DD), inclusive.
    #[serde(default, rename = "from", skip_serializing_if = "Option::is_none")]
    pub date_from: Option<String>,
    /// Business dates up to this day (YYYY-MM-DD), inclusive.
    #[serde(default, rename = "to", skip_serializing_if = "Option::is_none")]
    pub date_to: Option<String>,
    #[serde(default)]
    pub sort: Sort,
    /// From 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u32>,
}

/// A query that cannot be run, said so the user can fix it.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(
        "give at least one criterion: person_id, name, business_number, employer_id, business_type, category, org, from or to"
    )]
    NoCriterion,
    #[error(
        "a name query needs at least {MIN_NAME_CHARS} characters (got {0:?}): one character matches too many people"
    )]
    NameTooShort(String),
    #[error("{field} is a date YYYY-MM-DD, not {value:?}")]
    BadDate { field: &'static str, value: String },
    #[error("from {from} is after to {to}")]
    DatesReversed { from: String, to: String },
    #[error("org is an organisation code (6 or 9 digits): {0}")]
    BadOrg(#[from] dangan_shared::ParseOrgCodeError),
    #[error("page counts from 1")]
    BadPage,
    #[error("per_page is 1 to {MAX_PER_PAGE}, not {0}")]
    BadPerPage(u32),
    #[error(
        "page {page} lies beyond the first {TOTAL_CAP} hits; narrow the search (a date range, an organisation)"
    )]
    BeyondCap { page: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SearchError {
    /// The query was at fault (a 400), not the database.
    pub fn is_invalid(&self) -> bool {
        !matches!(self, SearchError::Store(_))
    }
}

impl From<rusqlite::Error> for SearchError {
    fn from(err: rusqlite::Error) -> Self {
        SearchError::Store(err.into())
    }
}

/// One business file found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub id: i64,
    pub business_number: Option<String>,
    pub person_id: Option<String>,
    pub person_name: Option<String>,
    pub employer_id: Option<String>,
    pub business_type: Option<String>,
    pub category: Option<String>,
    pub organisation: String,
    /// The organisation's name, when the hub knows it.
    pub organisation_name: Option<String>,
    pub date: Option<String>,
    pub pages: u64,
    pub batch: String,
    pub district: String,
}

/// One page of hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchPage {
    /// Hits in the caller's scope, at most [`TOTAL_CAP`].
    pub total: u64,
    /// There are more than `total` hits.
    pub total_capped: bool,
    pub page: u32,
    pub per_page: u32,
    pub hits: Vec<Hit>,
}

/// A validated query: trimmed, empty fields dropped.
#[derive(Debug)]
struct Criteria {
    person_id: Option<String>,
    name: Option<String>,
    business_number: Option<BusinessNumber>,
    employer_id: Option<String>,
    business_type: Option<String>,
    category: Option<String>,
    org: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
    sort: Sort,
    page: u32,
    per_page: u32,
}

#[derive(Debug)]
enum BusinessNumber {
    Exact(String),
    Prefix(String),
}

fn given(field: &Option<String>) -> Option<String> {
    field
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn date(field: &'static str, value: &Option<String>) -> Result<Option<String>, SearchError> {
    let Some(value) = given(value) else {
        return Ok(None);
    };
    if is_date(&value) {
        Ok(Some(value))
    } else {
        Err(SearchError::BadDate { field, value })
    }
}

/// `YYYY-MM-DD`, a day of the calendar.
fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(at, byte)| at == 4 || at == 7 || byte.is_ascii_digit());
    if !shape {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        text[..4].parse::<i32>(),
        text[5..7].parse::<u8>(),
        text[8..].parse::<u8>(),
    ) else {
        return false;
    };
    time::Month::try_from(month)
        .and_then(|month| time::Date::from_calendar_date(year, month, day))
        .is_ok()
}

impl SearchQuery {
    fn validate(&self) -> Result<Criteria, SearchError> {
        let name = given(&self.name);
        if let Some(name) = &name
            && name.chars().count() < MIN_NAME_CHARS
        {
            return Err(SearchError::NameTooShort(name.clone()));
        }
        let business_number = given(&self.business_number).and_then(|number| {
            match number.strip_suffix('*').map(str::trim_end) {
                Some("") => None,
                Some(prefix) => Some(BusinessNumber::Prefix(prefix.to_owned())),
                None => Some(BusinessNumber::Exact(number)),
            }
        });
        let org = match given(&self.org) {
            Some(code) => Some(code.parse::<dangan_shared::OrgCode>()?.to_string()),
            None => None,
        };
        let date_from = date("from", &self.date_from)?;
        let date_to = date("to", &self.date_to)?;
        if let (Some(from), Some(to)) = (&date_from, &date_to)
            && from > to
        {
            return Err(SearchError::DatesReversed {
                from: from.clone(),
                to: to.clone(),
            });
        }
        let page = self.page.unwrap_or(1);
        if page == 0 {
            return Err(SearchError::BadPage);
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(SearchError::BadPerPage(per_page));
        }
        if u64::from(page - 1) * u64::from(per_page) >= TOTAL_CAP {
            return Err(SearchError::BeyondCap { page });
        }
        let criteria = Criteria {
            person_id: given(&self.person_id).map(|id| id.to_uppercase()),
            name,
            business_number,
            employer_id: given(&self.employer_id),
            business_type: given(&self.business_type),
            category: given(&self.category),
            org,
            date_from,
            date_to,
            sort: self.sort,
            page,
            per_page,
        };
        let any = criteria.person_id.is_some()
            || criteria.name.is_some()
            || criteria.business_number.is_some()
            || criteria.employer_id.is_some()
            || criteria.business_type.is_some()
            || criteria.category.is_some()
            || criteria.org.is_some()
            || criteria.date_from.is_some()
            || criteria.date_to.is_some();
        if !any {
            return Err(SearchError::NoCriterion);
        }
        Ok(criteria)
    }
}

/// The character bigrams of `text` as the name index holds them (SQLite's
/// `substr` counts characters, as `chars` does), each once.
pub fn bigrams(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found: Vec<String> = Vec::new();
    for pair in chars.windows(2) {
        let bigram: String = pair.iter().collect();
        if !found.contains(&bigram) {
            found.push(bigram);
        }
    }
    found
}

/// Which criterion drives the query through its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    PersonId,
    BusinessNumber,
    Name,
    EmployerId,
    /// Organisation, dates, type, category: SQLite picks.
    Planner,
}

/// `column` as a condition that may use its index, or not (`+column`).
fn column(name: &str, indexed: bool) -> String {
    if indexed {
        format!("f.{name}")
    } else {
        format!("+f.{name}")
    }
}

/// A search's WITH clause (the scope's and the wanted organisation's
/// subtrees), its FROM and WHERE clauses, the business file id they give
/// and the order of the page, with their parameters in order.
struct Statement {
    with: String,
    from_where: String,
    id: &'static str,
    order_by: String,
    params: Vec<Value>,
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// Of the name's bigrams, the one with the fewest files first (counted up
/// to a bound: beyond it, any is as good).
fn rarest_first(conn: &Connection, name: &str) -> Result<Vec<String>, SearchError> {
    let mut counted = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM name_bigrams WHERE bigram = ?1 LIMIT 5000)",
    )?;
    let all = bigrams(name);
    if all.len() == 1 {
        return Ok(all);
    }
    for bigram in all {
        let count: i64 = statement.query_row([&bigram], |row| row.get(0))?;
        counted.push((count, bigram));
    }
    counted.sort();
    Ok(counted.into_iter().map(|(_, bigram)| bigram).collect())
}

fn statement(
    conn: &Connection,
    scope: &Scope,
    criteria: &Criteria,
) -> Result<Statement, SearchError> {
    let mut params = Vec::new();
    let roots = serde_json::to_string(&scope.roots)
        .map_err(|err| StoreError::Corrupt(format!("scope: {err}")))?;
    let mut with = String::from(
        "WITH RECURSIVE scope(code) AS (
             SELECT value FROM json_each(?)
             UNION SELECT o.code FROM orgs o JOIN scope s ON o.parent = s.code)",
    );
    params.push(Value::Text(roots));
    if let Some(org) = &criteria.org {
        with.push_str(
            ", wanted(code) AS (
                 SELECT ?
                 UNION SELECT o.code FROM orgs o JOIN wanted w ON o.parent = w.code)",
        );
        params.push(text(org));
    }
    let driver = if criteria.person_id.is_some() {
        Driver::PersonId
    } else if criteria.business_number.is_some() {
        Driver::BusinessNumber
    } else if criteria.name.is_some() {
        Driver::Name
    } else if criteria.employer_id.is_some() {
        Driver::EmployerId
    } else {
        Driver::Planner
    };
    if driver == Driver::Name {
        let (from_where, order_by) = by_name(conn, criteria, &mut params)?;
        return Ok(Statement {
            with,
            from_where,
            id: "g.business_file_id",
            order_by,
            params,
        });
    }
    let mut sql = String::from(
        "FROM business_files f JOIN batches b ON b.id = f.batch_id
         WHERE (f.organisation IN (SELECT code FROM scope)
                OR b.district IN (SELECT code FROM scope))",
    );
    if let Some(person_id) = &criteria.person_id {
        let person = column("person_id", driver == Driver::PersonId);
        sql.push_str(&format!(" AND {person} = ?"));
        params.push(text(person_id));
    }
    match &criteria.business_number {
        Some(BusinessNumber::Exact(number)) => {
            let number_column = column("business_number", driver == Driver::BusinessNumber);
            sql.push_str(&format!(" AND {number_column} = ?"));
            params.push(text(number));
        }
        Some(BusinessNumber::Prefix(prefix)) => {
            // A range the index can use: every text starting with the
            // prefix sorts from it to it followed by the highest character.
            let number_column = column("business_number", driver == Driver::BusinessNumber);
            sql.push_str(&format!(
                " AND {number_column} >= ? AND {number_column} < ?"
            ));
            params.push(text(prefix));
            params.push(Value::Text(format!("{prefix}{}", char::MAX)));
        }
        None => {}
    }
    if let Some(name) = &criteria.name {
        sql.push_str(" AND instr(f.person_name, ?) > 0");
        params.push(text(name));
    }
    let planned = driver == Driver::Planner;
    if let Some(employer_id) = &criteria.employer_id {
        let employer = column("employer_id", driver == Driver::EmployerId);
        sql.push_str(&format!(" AND {employer} = ?"));
        params.push(text(employer_id));
    }
    if criteria.org.is_some() {
        let organisation = column("organisation", planned);
        sql.push_str(&format!(" AND {organisation} IN (SELECT code FROM wanted)"));
    }
    if let Some(from) = &criteria.date_from {
        sql.push_str(&format!(" AND {} >= ?", column("date", planned)));
        params.push(text(from));
    }
    if let Some(to) = &criteria.date_to {
        sql.push_str(&format!(" AND {} <= ?", column("date", planned)));
        params.push(text(to));
    }
    file_filters(criteria, &mut sql, &mut params);
    Ok(Statement {
        with,
        from_where: sql,
        id: "f.id",
        order_by: criteria.sort.order_by("f"),
        params,
    })
}

/// Criteria only the business file's row can tell.
fn file_filters(criteria: &Criteria, sql: &mut String, params: &mut Vec<Value>) {
    if let Some(business_type) = &criteria.business_type {
        sql.push_str(" AND f.business_type = ?");
        params.push(text(business_type));
    }
    if let Some(category) = &criteria.category {
        sql.push_str(" AND f.category = ?");
        params.push(text(category));
    }
}

/// A search driven by a name: the rarest bigram's entries, which carry each
/// file's date, organisation and district, so scope, organisation, dates
/// and the date order are settled in the index, and a page of a common
/// two-character name reads only its own files. The file's row is read for
/// each candidate only when a criterion needs it (three or more characters
/// to confirm, employer, type, category, or the business-number order).
fn by_name(
    conn: &Connection,
    criteria: &Criteria,
    params: &mut Vec<Value>,
) -> Result<(String, String), SearchError> {
    let name = criteria.name.as_deref().unwrap_or_default();
    let confirm = name.chars().count() > MIN_NAME_CHARS;
    let needs_file = confirm
        || criteria.employer_id.is_some()
        || criteria.business_type.is_some()
        || criteria.category.is_some()
        || criteria.sort == Sort::BusinessNumber;
    let mut sql = String::from("FROM name_bigrams g");
    if needs_file {
        sql.push_str(" JOIN business_files f ON f.id = g.business_file_id");
    }
    let mut bigrams = rarest_first(conn, name)?.into_iter();
    sql.push_str(
        " WHERE g.bigram = ?
            AND (g.organisation IN (SELECT code FROM scope)
                 OR g.district IN (SELECT code FROM scope))",
    );
    params.push(Value::Text(bigrams.next().unwrap_or_default()));
    for other in bigrams {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM name_bigrams o WHERE o.bigram = ?
                          AND o.date = g.date AND o.business_file_id = g.business_file_id)",
        );
        params.push(Value::Text(other));
    }
    if confirm {
        sql.push_str(" AND instr(f.person_name, ?) > 0");
        params.push(text(name));
    }
    if let Some(employer_id) = &criteria.employer_id {
        sql.push_str(" AND f.employer_id = ?");
        params.push(text(employer_id));
    }
    if criteria.org.is_some() {
        sql.push_str(" AND g.organisation IN (SELECT code FROM wanted)");
    }
    // A file without a date is indexed with '' (first in date order, as
    // NULL is in the file's own order), and never within a date range.
    if let Some(from) = &criteria.date_from {
        sql.push_str(" AND g.date >= ?");
        params.push(text(from));
    }
    if let Some(to) = &criteria.date_to {
        sql.push_str(" AND g.date <= ? AND g.date <> ''");
        params.push(text(to));
    }
    file_filters(criteria, &mut sql, params);
    let order_by = match criteria.sort {
        Sort::DateDesc => "g.date DESC, g.business_file_id DESC".to_owned(),
        Sort::DateAsc => "g.date ASC, g.business_file_id ASC".to_owned(),
        Sort::BusinessNumber => Sort::BusinessNumber.order_by("f"),
    };
    Ok((sql, order_by))
}

/// A validated search's page query and count query, sharing parameters.
struct Prepared {
    criteria: Criteria,
    hits_sql: String,
    count_sql: String,
    params: Vec<Value>,
}

fn prepare(conn: &Connection, scope: &Scope, query: &SearchQuery) -> Result<Prepared, SearchError> {
    let criteria = query.validate()?;
    let Statement {
        with,
        from_where,
        id,
        order_by,
        params,
    } = statement(conn, scope, &criteria)?;
    // The page's ids are chosen first, then the files read, named and
    // counted: the row, the organisation's name and the page count cost a
    // lookup per hit shown, not per match.
    let hits_sql = format!(
        "{with}
         SELECT f.id, f.business_number, f.person_id, f.person_name, f.employer_id,
                f.business_type, f.category, f.organisation, o.name, f.date,
                (SELECT count(*) FROM pages p WHERE p.business_file_id = f.id),
                b.batch, b.district
         FROM (SELECT {id} AS id {from_where} ORDER BY {order_by} LIMIT ? OFFSET ?) h
         JOIN business_files f ON f.id = h.id
         JOIN batches b ON b.id = f.batch_id
         LEFT JOIN orgs o ON o.code = f.organisation
         ORDER BY {}",
        criteria.sort.order_by("f"),
    );
    let count_sql = format!("{with} SELECT count(*) FROM (SELECT 1 {from_where} LIMIT ?)");
    Ok(Prepared {
        criteria,
        hits_sql,
        count_sql,
        params,
    })
}

/// How SQLite runs `query`'s page query (`EXPLAIN QUERY PLAN`), one line
/// per step, for the benchmark and for an operator wondering why a search
/// is slow.
pub fn plan(
    conn: &Connection,
    scope: &Scope,
    query: &SearchQuery,
) -> Result<Vec<String>, SearchError> {
    let Prepared {
        hits_sql,
        mut params,
        ..
    } = prepare(conn, scope, query)?;
    params.push(Value::Integer(1));
    params.push(Value::Integer(0));
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {hits_sql}"))?;
    let rows = statement.query_map(params_from_iter(params), |row| row.get::<_, String>(3))?;
    let mut lines = Vec::new();
    for row in rows {
        lines.push(row?);
    }
    Ok(lines)
}

/// Runs `query` for a caller with `scope`: one page of hits, sorted, and
/// how many there are (up to [`TOTAL_CAP`]).
pub fn search(
    conn: &Connection,
    scope: &Scope,
    query: &SearchQuery,
) -> Result<SearchPage, SearchError> {
    let Prepared {
        criteria,
        hits_sql,
        count_sql,
        params,
    } = prepare(conn, scope, query)?;
    let offset = u64::from(criteria.page - 1) * u64::from(criteria.per_page);
    let mut page_params = params.clone();
    page_params.push(Value::Integer(i64::from(criteria.per_page)));
    page_params.push(Value::Integer(offset as i64));
    let mut statement = conn.prepare_cached(&hits_sql)?;
    let rows = statement.query_map(params_from_iter(page_params), |row| {
        Ok(Hit {
            id: row.get(0)?,
            business_number: row.get(1)?,
            person_id: row.get(2)?,
            person_name: row.get(3)?,
            employer_id: row.get(4)?,
            business_type: row.get(5)?,
            category: row.get(6)?,
            organisation: row.get(7)?,
            organisation_name: row.get(8)?,
            date: row.get(9)?,
            pages: row.get(10)?,
            batch: row.get(11)?,
            district: row.get(12)?,
        })
    })?;
    let mut hits = Vec::new();
    for row in rows {
        hits.push(row?);
    }
    // A short page that is not past the end tells the total without counting.
    let short = (hits.len() as u64) < u64::from(criteria.per_page);
    let counted = if short && (!hits.is_empty() || offset == 0) {
        offset + hits.len() as u64
    } else {
        let mut count_params = params;
        count_params.push(Value::Integer(TOTAL_CAP as i64 + 1));
        let count: i64 = conn
            .prepare_cached(&count_sql)?
            .query_row(params_from_iter(count_params), |row| row.get(0))?;
        count.max(0) as u64
    };
    Ok(SearchPage {
        total: counted.min(TOTAL_CAP),
        total_capped: counted > TOTAL_CAP,
        page: criteria.page,
        per_page: criteria.per_page,
        hits,
    })
}

/// One page of a business file as its page list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageEntry {
    pub seq: i64,
    pub blob: String,
    pub format: String,
    pub width: i64,
    pub height: i64,
}

/// A business file's pages in order (the `pages_business_file` index):
/// what opening a file from the hit list reads. Scope is the caller's to
/// check, as `GET /api/v1/files/{id}` does.
pub fn page_list(conn: &Connection, business_file_id: i64) -> Result<Vec<PageEntry>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, blob, format, width, height FROM pages
         WHERE business_file_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([business_file_id], |row| {
        Ok(PageEntry {
            seq: row.get(0)?,
            blob: row.get(1)?,
            format: row.get(2)?,
            width: row.get(3)?,
            height: row.get(4)?,
        })
    })?;
    let mut pages = Vec::new();
    for row in rows {
        pages.push(row?);
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rusqlite::params;

    use super::*;
    use crate::store::Db;

    #[test]
    fn bigrams_are_character_pairs_each_once() {
        assert_eq!(bigrams("张三丰"), ["张三", "三丰"]);
        assert_eq!(bigrams("哈哈哈"), ["哈哈"]);
        assert_eq!(
            bigrams("买买提·艾力"),
            ["买买", "买提", "提·", "·艾", "艾力"]
        );
        assert!(bigrams("张").is_empty());
        assert!(bigrams("").is_empty());
    }

    fn invalid(query: SearchQuery) -> String {
        match query.validate() {
            Err(err) => {
                assert!(err.is_invalid());
                err.to_string()
            }
            Ok(criteria) => panic!("accepted: {criteria:?}"),
        }
    }

    #[test]
    fn queries_are_checked_with_messages() {
        assert!(invalid(SearchQuery::default()).contains("at least one criterion"));
        let blank = SearchQuery {
            name: Some("  ".into()),
            person_id: Some(String::new()),
            ..Default::default()
        };
        assert!(invalid(blank).contains("at least one criterion"));
        let short = SearchQuery {
            name: Some(" 张 ".into()),
            ..Default::default()
        };
        assert!(invalid(short).contains("at least 2 characters"));
        for bad in ["2026-02-30", "2026-2-01", "20260201", "yesterday"] {
            let query = SearchQuery {
                date_from: Some(bad.into()),
                ..Default::default()
            };
            assert!(
                invalid(query).contains("from is a date YYYY-MM-DD"),
                "{bad}"
            );
        }
        let reversed = SearchQuery {
            date_from: Some("2026-02-01".into()),
            date_to: Some("2026-01-31".into()),
            ..Default::default()
        };
        assert!(invalid(reversed).contains("after"));
        let org = SearchQuery {
            org: Some("33".into()),
            ..Default::default()
        };
        assert!(invalid(org).contains("organisation code"));
        let name = || Some("张三".to_owned());
        for (page, per_page, message) in [
            (Some(0), None, "page counts from 1"),
            (None, Some(0), "per_page is 1 to 100"),
            (None, Some(101), "per_page is 1 to 100"),
            (Some(501), Some(20), "beyond the first 10000 hits"),
        ] {
            let query = SearchQuery {
                name: name(),
                page,
                per_page,
                ..Default::default()
            };
            assert!(invalid(query).contains(message), "{message}");
        }
        let last = SearchQuery {
            name: name(),
            page: Some(500),
            person_id: Some("33010619900101001x".into()),
            business_number: Some("YL2026*".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(last.person_id.as_deref(), Some("33010619900101001X"));
        assert!(matches!(last.business_number, Some(BusinessNumber::Prefix(p)) if p == "YL2026"));
    }

    /// A hub with 330106 and 330108 under 330100, a node in each, and no files.
    fn hub() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path()).unwrap();
        let mut conn = db.get().unwrap();
        crate::orgs::add(&mut conn, "330100", "杭州市", None).unwrap();
        crate::orgs::add(&mut conn, "330106", "西湖区", Some("330100")).unwrap();
        crate::orgs::add(&mut conn, "330106001", "北山街道", Some("330106")).unwrap();
        crate::orgs::add(&mut conn, "330108", "滨江区", Some("330100")).unwrap();
        for district in ["330106", "330108"] {
            conn.execute(
                "INSERT INTO nodes(id, district, token_hash, enrolled_at) VALUES (?1, ?2, ?1, 'then')",
                params![format!("node-{district}"), district],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO batches(district, batch, manifest_hash, accepted_at, node_id, pages,
                     blobs, bytes, committed_at, receipt)
                 VALUES (?1, 'B1', 'h', 'then', ?2, 0, 0, 0, 'then', '{}')",
                params![district, format!("node-{district}")],
            )
            .unwrap();
        }
        drop(conn);
        (dir, db)
    }

    fn file(conn: &Connection, district: &str, organisation: &str, name: &str, date: &str) -> i64 {
        let batch: i64 = conn
            .query_row(
                "SELECT id FROM batches WHERE district = ?1",
                [district],
                |row| row.get(0),
            )
            .unwrap();
        conn.execute(
            "INSERT INTO business_files(batch_id, seq, business_number, organisation, person_id,
                 person_name, date)
             VALUES (?1, (SELECT count(*) + 1 FROM business_files WHERE batch_id = ?1),
                     'YL' || ?2, ?3, '330106199001010011', ?4, ?2)",
            params![batch, date, organisation, name],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    fn indexed(conn: &Connection, id: i64) -> Vec<String> {
        let mut statement = conn
            .prepare("SELECT bigram FROM name_bigrams WHERE business_file_id = ?1 ORDER BY bigram")
            .unwrap();
        statement
            .query_map([id], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn the_name_index_follows_inserts_updates_and_deletes() {
        let (_dir, db) = hub();
        let conn = db.get().unwrap();
        let id = file(&conn, "330106", "330106", "张三丰", "2026-01-01");
        let mut expected = bigrams("张三丰");
        expected.sort();
        assert_eq!(indexed(&conn, id), expected);
        let one = file(&conn, "330106", "330106", "张", "2026-01-01");
        assert!(indexed(&conn, one).is_empty());
        conn.execute(
            "UPDATE business_files SET person_name = '李四' WHERE id = ?1",
            [id],
        )
        .unwrap();
        assert_eq!(indexed(&conn, id), ["李四"]);
        // Entries carry the file's date, organisation and district along.
        conn.execute(
            "UPDATE business_files SET date = NULL, organisation = '330106001' WHERE id = ?1",
            [id],
        )
        .unwrap();
        let entry: (String, String, String) = conn
            .query_row(
                "SELECT date, organisation, district FROM name_bigrams WHERE business_file_id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(entry, (String::new(), "330106001".into(), "330106".into()));
        conn.execute(
            "UPDATE business_files SET person_name = NULL WHERE id = ?1",
            [id],
        )
        .unwrap();
        assert!(indexed(&conn, id).is_empty());
        conn.execute(
            "UPDATE business_files SET person_name = '阿卜杜拉·买买提' WHERE id = ?1",
            [id],
        )
        .unwrap();
        assert_eq!(indexed(&conn, id).len(), 7);
        conn.execute("DELETE FROM business_files WHERE id = ?1", [id])
            .unwrap();
        assert!(indexed(&conn, id).is_empty());
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM name_bigrams", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    fn names(page: &SearchPage) -> Vec<&str> {
        page.hits
            .iter()
            .map(|hit| hit.person_name.as_deref().unwrap_or_default())
            .collect()
    }

    #[test]
    fn names_match_any_part_within_scope_sorted_and_paged() {
        let (_dir, db) = hub();
        let conn = db.get().unwrap();
        file(&conn, "330106", "330106001", "张三丰", "2025-03-01");
        file(&conn, "330106", "330106", "张三", "2026-01-01");
        file(&conn, "330106", "330106", "王三丰", "2024-07-01");
        file(&conn, "330108", "330108", "张三丰", "2026-02-01");
        let city = Scope {
            roots: vec!["330100".into()],
        };
        let west = Scope {
            roots: vec!["330106".into()],
        };
        let by_name = |name: &str| SearchQuery {
            name: Some(name.into()),
            ..Default::default()
        };
        let found = search(&conn, &city, &by_name("三丰")).unwrap();
        assert_eq!(names(&found), ["张三丰", "张三丰", "王三丰"]);
        assert_eq!((found.total, found.total_capped), (3, false));
        let found = search(&conn, &west, &by_name("张三")).unwrap();
        assert_eq!(names(&found), ["张三", "张三丰"]);
        assert_eq!(found.hits[1].organisation_name.as_deref(), Some("北山街道"));
        assert_eq!(found.hits[1].district, "330106");
        let found = search(&conn, &west, &by_name("张三丰")).unwrap();
        assert_eq!(found.total, 1);
        let found = search(&conn, &west, &by_name("丰张")).unwrap();
        assert_eq!(found.total, 0);
        // Paged oldest first: the total is counted when a page is full.
        let query = SearchQuery {
            sort: Sort::DateAsc,
            per_page: Some(1),
            page: Some(2),
            ..by_name("三")
        };
        assert!(search(&conn, &city, &query).is_err(), "one character");
        let query = SearchQuery {
            org: Some("330100".into()),
            name: None,
            ..query
        };
        let found = search(&conn, &city, &query).unwrap();
        assert_eq!((found.total, found.page, found.per_page), (4, 2, 1));
        assert_eq!(found.hits[0].date.as_deref(), Some("2025-03-01"));
        // The organisation's subtree and a date range narrow it.
        let query = SearchQuery {
            org: Some("330106".into()),
            date_from: Some("2025-01-01".into()),
            date_to: Some("2026-01-01".into()),
            ..by_name("张三")
        };
        let found = search(&conn, &city, &query).unwrap();
        assert_eq!(names(&found), ["张三", "张三丰"]);
        let query = SearchQuery {
            date_to: Some("2025-12-31".into()),
            ..query
        };
        assert_eq!(names(&search(&conn, &city, &query).unwrap()), ["张三丰"]);
        // A file without a date comes last, and within no date range.
        conn.execute(
            "UPDATE business_files SET date = NULL WHERE person_name = '张三'",
            [],
        )
        .unwrap();
        let found = search(&conn, &west, &by_name("张三")).unwrap();
        assert_eq!(names(&found), ["张三丰", "张三"]);
        assert_eq!(found.hits[1].date, None);
        let query = SearchQuery {
            date_to: Some("2030-01-01".into()),
            ..by_name("张三")
        };
        assert_eq!(names(&search(&conn, &west, &query).unwrap()), ["张三丰"]);
    }
}
