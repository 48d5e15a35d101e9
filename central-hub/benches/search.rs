//! Search at scale: a hub index of 1,000,000 business files and
//! 10,000,000 pages (generated rows, SQLite with the hub's own settings),
//! and the p50/p99 of the searches the reviewers make most, through
//! `dangan_hub::search` as the API calls it (scope: the whole city).
//!
//! `cargo bench -p dangan-hub --bench search`. The generated database is
//! kept under `target/tmp/search-bench-*` (keyed by [`DATA_VERSION`] and the
//! sizes), so a rerun only measures; delete it to regenerate. Sizes:
//! `DANGAN_SEARCH_BENCH_FILES` (default 1,000,000; pages are ten times as
//! many), queries per kind: `DANGAN_SEARCH_BENCH_QUERIES` (default 200).
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use dangan_hub::search::{self, SearchQuery};
use dangan_hub::store::Db;
use dangan_hub::users::Scope;
use rusqlite::{Connection, params};

/// Bump when the generated rows or the schema they need change.
const DATA_VERSION: u32 = 2;

const CITY: &str = "330100";
const DISTRICTS: u32 = 50;
const STREETS_PER_DISTRICT: u32 = 5;
const FILES_PER_BATCH: u64 = 100;
const PERSONS_PER_FILE: f64 = 0.3;

/// Common surnames, most frequent first (weights roughly as in China).
const SURNAMES: &[(&str, u32)] = &[
    ("王", 72),
    ("李", 71),
    ("张", 68),
    ("刘", 53),
    ("陈", 46),
    ("杨", 31),
    ("黄", 22),
    ("赵", 20),
    ("吴", 19),
    ("周", 19),
    ("徐", 15),
    ("孙", 15),
    ("马", 14),
    ("朱", 13),
    ("胡", 12),
    ("郭", 11),
    ("何", 10),
    ("高", 10),
    ("林", 10),
    ("罗", 9),
    ("郑", 9),
    ("梁", 8),
    ("谢", 7),
    ("宋", 6),
    ("唐", 6),
    ("许", 6),
    ("韩", 6),
    ("冯", 5),
    ("邓", 5),
    ("曹", 5),
    ("彭", 5),
    ("曾", 5),
    ("肖", 5),
    ("田", 4),
    ("董", 4),
    ("袁", 4),
    ("潘", 4),
    ("于", 4),
    ("蒋", 4),
    ("蔡", 4),
    ("余", 4),
    ("杜", 3),
    ("叶", 3),
    ("程", 3),
    ("苏", 3),
    ("魏", 3),
    ("吕", 3),
    ("丁", 3),
    ("任", 3),
    ("沈", 3),
    ("姚", 2),
    ("卢", 2),
    ("姜", 2),
    ("崔", 2),
    ("钟", 2),
    ("谭", 2),
    ("陆", 2),
    ("汪", 2),
    ("范", 2),
    ("金", 2),
    ("石", 2),
    ("廖", 2),
    ("贾", 2),
    ("夏", 2),
    ("韦", 2),
    ("欧阳", 1),
    ("司马", 1),
    ("诸葛", 1),
];

/// Characters of given names, most frequent first (Zipf-weighted below).
const GIVEN: &str = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华玉兰萍红建国文辉力\
    鹏飞宇浩然子轩梓涵欣怡佳琪思雨晨阳俊峰志宏海波斌林云燕丹凤琳晶颖婷雪梅\
    丰三春秋冬玲慧婕倩雯瑶璐嘉懿博宁安康永福荣昌盛德兴家庆祥瑞光亮鑫淼森";

/// A small deterministic generator (SplitMix64): the same rows every time.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// An index into `weights`, drawn by weight.
    fn weighted(&mut self, weights: &[u32], total: u32) -> usize {
        let mut pick = self.below(u64::from(total)) as u32;
        for (index, weight) in weights.iter().enumerate() {
            if pick < *weight {
                return index;
            }
            pick -= weight;
        }
        weights.len() - 1
    }
}

struct Names {
    surname_weights: Vec<u32>,
    surname_total: u32,
    given: Vec<char>,
    given_weights: Vec<u32>,
    given_total: u32,
}

impl Names {
    fn new() -> Names {
        let surname_weights: Vec<u32> = SURNAMES.iter().map(|(_, w)| *w).collect();
        let given: Vec<char> = GIVEN.chars().filter(|c| !c.is_whitespace()).collect();
        // Zipf: the k-th character is 1/k as frequent as the first.
        let given_weights: Vec<u32> = (1..=given.len() as u32).map(|k| 10_000 / k).collect();
        Names {
            surname_total: surname_weights.iter().sum(),
            surname_weights,
            given_total: given_weights.iter().sum(),
            given,
            given_weights,
        }
    }

    fn draw(&self, random: &mut Random) -> String {
        let surname = SURNAMES[random.weighted(&self.surname_weights, self.surname_total)].0;
        let mut name = surname.to_owned();
        // Seven in ten given names have two characters.
        let length = if random.below(10) < 7 { 2 } else { 1 };
        for _ in 0..length {
            name.push(self.given[random.weighted(&self.given_weights, self.given_total)]);
        }
        name
    }
}

/// An 18-character identity number with a valid check character.
fn person_id(random: &mut Random, district: &str) -> String {
    let year = 1950 + random.below(55);
    let month = 1 + random.below(12);
    let day = 1 + random.below(28);
    let digits = format!(
        "{district}{year:04}{month:02}{day:02}{:03}",
        random.below(1000)
    );
    let check = dangan_shared::PersonId::check_character(&digits).unwrap_or('X');
    format!("{digits}{check}")
}

fn district_code(index: u32) -> String {
    format!("3301{:02}", index + 1)
}

struct Person {
    id: String,
    name: String,
    district: u32,
}

fn generate(path: &Path, files: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(path)?;
    drop(Db::create(path).context("creating the hub database")?);
    let mut conn = Connection::open(path.join(dangan_hub::store::DB_FILE))?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -2_000_000)?;
    // Loaded faster without the random-order index, built once at the end.
    conn.execute_batch("DROP INDEX pages_blob")?;
    let mut random = Random(20_261_126);
    let names = Names::new();
    let tx = conn.transaction()?;
    let now = "2026-11-26T00:00:00Z";
    tx.execute(
        "INSERT INTO orgs(code, name, level, parent, status, created_at, updated_at)
         VALUES (?1, '杭州市', 'city', NULL, 'active', ?2, ?2)",
        params![CITY, now],
    )?;
    for district in 0..DISTRICTS {
        let code = district_code(district);
        tx.execute(
            "INSERT INTO orgs(code, name, level, parent, status, created_at, updated_at)
             VALUES (?1, ?2, 'district', ?3, 'active', ?4, ?4)",
            params![code, format!("第{}区", district + 1), CITY, now],
        )?;
        tx.execute(
            "INSERT INTO districts(code, created_at) VALUES (?1, ?2)",
            params![code, now],
        )?;
        tx.execute(
            "INSERT INTO nodes(id, district, token_hash, enrolled_at) VALUES (?1, ?2, ?1, ?3)",
            params![format!("node-{code}"), code, now],
        )?;
        for street in 1..=STREETS_PER_DISTRICT {
            tx.execute(
                "INSERT INTO orgs(code, name, level, parent, status, created_at, updated_at)
                 VALUES (?1, ?2, 'street_office', ?3, 'active', ?4, ?4)",
                params![
                    format!("{code}{street:03}"),
                    format!("第{}区第{street}街道", district + 1),
                    code,
                    now
                ],
            )?;
        }
    }
    let persons: Vec<Person> = (0..((files as f64 * PERSONS_PER_FILE) as u64).max(1))
        .map(|_| {
            let district = random.below(u64::from(DISTRICTS)) as u32;
            Person {
                id: person_id(&mut random, &district_code(district)),
                name: names.draw(&mut random),
                district,
            }
        })
        .collect();
    let employers: Vec<String> = (0..(files / 50).max(1))
        .map(|index| format!("91330100MA{index:08}"))
        .collect();
    let types = [
        "pension_enrolment",
        "pension_payment",
        "medical_enrolment",
        "unemployment_claim",
        "injury_claim",
        "transfer",
        "contribution_change",
        "retirement",
    ];
    let categories = ["management", "collection", "records", "payment", "other"];
    let mut insert_batch = tx.prepare(
        "INSERT INTO batches(id, district, batch, manifest_hash, business_type, accepted_at,
             node_id, pages, blobs, bytes, committed_at, receipt)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, 0, 0, 0, ?5, '{}')",
    )?;
    let mut insert_file = tx.prepare(
        "INSERT INTO business_files(id, batch_id, seq, business_number, business_type, category,
             retention, date, organisation, person_id, person_name, employer_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut insert_page = tx.prepare(
        "INSERT INTO pages(batch_id, business_file_id, seq, blob, size, format, width, height,
             dpi, colour, barcodes, separator, blank, source, frame)
         VALUES (?1, ?2, ?3, ?4, ?5, 'jpeg', 2480, 3508, 300, 'gray', '[]', 0, 0, 'scan', 0)",
    )?;
    let mut batch_id: i64 = 0;
    let mut batch_district = 0;
    let mut page_seq = 0u32;
    let mut pages = 0u64;
    for file in 1..=files {
        // A batch is one district's; its files are that district's people.
        if (file - 1) % FILES_PER_BATCH == 0 {
            batch_id += 1;
            batch_district = random.below(u64::from(DISTRICTS)) as u32;
            page_seq = 0;
            let code = district_code(batch_district);
            insert_batch.execute(params![
                batch_id,
                code,
                format!("B{batch_id:07}"),
                blake3::hash(&batch_id.to_le_bytes()).to_hex().as_str(),
                now,
                format!("node-{code}"),
            ])?;
        }
        let person = loop {
            let person = &persons[random.below(persons.len() as u64) as usize];
            if person.district == batch_district || random.below(4) == 0 {
                break person;
            }
        };
        let district = district_code(batch_district);
        let street = 1 + random.below(u64::from(STREETS_PER_DISTRICT));
        let day = random.below(20 * 365);
        let date = time::Date::from_calendar_date(2006, time::Month::January, 1)?
            + time::Duration::days(day as i64);
        let date = format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        );
        let business_type = types[random.below(types.len() as u64) as usize];
        insert_file.execute(params![
            file as i64,
            batch_id,
            (file - 1) % FILES_PER_BATCH + 1,
            format!("YW{}{file:09}", date.replace('-', "")),
            business_type,
            categories[random.below(categories.len() as u64) as usize],
            if random.below(3) == 0 {
                "permanent"
            } else {
                "30y"
            },
            date,
            format!("{district}{street:03}"),
            person.id,
            person.name,
            employers[random.below(employers.len() as u64) as usize],
        ])?;
        // 3 to 17 pages, ten on average.
        for _ in 0..(3 + file % 15) {
            page_seq += 1;
            pages += 1;
            let blob = blake3::hash(&pages.to_le_bytes());
            insert_page.execute(params![
                batch_id,
                file as i64,
                page_seq,
                blob.to_hex().as_str(),
                200_000 + random.below(400_000) as i64,
            ])?;
        }
        if file % 100_000 == 0 {
            eprintln!(
                "  {file} business files, {pages} pages ({:.0?})",
                started.elapsed()
            );
        }
    }
    drop((insert_batch, insert_file, insert_page));
    tx.commit()?;
    eprintln!("  building pages_blob ({:.0?})", started.elapsed());
    conn.execute_batch("CREATE INDEX pages_blob ON pages(blob)")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    eprintln!(
        "generated {files} business files and {pages} pages in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The hub folder with the generated index, made if not there yet.
fn hub_folder(files: u64) -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = root.join(format!("search-bench-v{DATA_VERSION}-{files}"));
    let done = path.join("generated");
    if !done.exists() {
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        eprintln!("generating {} (once; kept for reruns)", path.display());
        generate(&path, files)?;
        std::fs::write(&done, b"")?;
    }
    Ok(path)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

struct Measured {
    what: &'static str,
    target: Option<Duration>,
    times: Vec<Duration>,
    hits: u64,
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("search benchmark: run it with `cargo bench -p dangan-hub --bench search`");
        return Ok(());
    }
    let files = env_number("DANGAN_SEARCH_BENCH_FILES", 1_000_000);
    let queries = env_number("DANGAN_SEARCH_BENCH_QUERIES", 200) as usize;
    let path = hub_folder(files)?;
    let db = Db::open(&path)?;
    let conn = db.get()?;
    let (file_count, page_count, bigram_count): (i64, i64, i64) = conn.query_row(
        "SELECT (SELECT count(*) FROM business_files), (SELECT max(id) FROM pages),
                (SELECT count(*) FROM name_bigrams)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    println!(
        "hub index: {file_count} business files, {page_count} pages, {bigram_count} name bigrams ({})",
        path.display()
    );
    let scope = Scope {
        roots: vec![CITY.to_owned()],
    };
    // What to look for: values of randomly drawn files, so common names
    // and people with many files come up as often as they occur.
    let mut random = Random(7);
    let mut samples = Vec::new();
    let mut sample = conn.prepare(
        "SELECT person_id, business_number, person_name FROM business_files WHERE id = ?1",
    )?;
    while samples.len() < queries {
        let id = 1 + random.below(file_count as u64) as i64;
        let (person_id, number, name): (String, String, String) =
            sample.query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        samples.push((id, person_id, number, name));
    }
    drop(sample);
    let part = |name: &str, length: usize, random: &mut Random| -> Option<String> {
        let chars: Vec<char> = name.chars().collect();
        let start = chars.len().checked_sub(length)?;
        let at = random.below(start as u64 + 1) as usize;
        Some(chars[at..at + length].iter().collect())
    };
    let mut kinds: Vec<(&'static str, Option<Duration>, Vec<SearchQuery>)> = vec![
        ("person id", Some(Duration::from_millis(50)), Vec::new()),
        (
            "business number",
            Some(Duration::from_millis(50)),
            Vec::new(),
        ),
        (
            "name, 2 characters",
            Some(Duration::from_millis(200)),
            Vec::new(),
        ),
        (
            "name, 3 characters",
            Some(Duration::from_millis(200)),
            Vec::new(),
        ),
    ];
    for (_, person_id, number, name) in &samples {
        kinds[0].2.push(SearchQuery {
            person_id: Some(person_id.clone()),
            ..Default::default()
        });
        kinds[1].2.push(SearchQuery {
            business_number: Some(number.clone()),
            ..Default::default()
        });
        kinds[2].2.push(SearchQuery {
            name: part(name, 2, &mut random),
            ..Default::default()
        });
    }
    // Three-character queries from names that have three characters.
    let mut three = conn.prepare(
        "SELECT person_name FROM business_files WHERE id >= ?1 AND length(person_name) >= 3
         ORDER BY id LIMIT 1",
    )?;
    while kinds[3].2.len() < queries {
        let id = 1 + random.below(file_count as u64) as i64;
        if let Ok(name) = three.query_row([id], |row| row.get::<_, String>(0)) {
            kinds[3].2.push(SearchQuery {
                name: part(&name, 3, &mut random),
                ..Default::default()
            });
        }
    }
    drop(three);
    for (what, _, queries) in &kinds {
        println!("\nplan, {what} ({:?}):", queries[0]);
        for line in search::plan(&conn, &scope, &queries[0])? {
            println!("  {line}");
        }
    }
    // The same two-character queries by a reviewer of one district, whose
    // scope holds a fiftieth of the files.
    let district = Scope {
        roots: vec![district_code(0)],
    };
    let two = kinds[2].2.clone();
    kinds.push((
        "name, 2 chars, one district",
        Some(Duration::from_millis(200)),
        two,
    ));
    let mut results = Vec::new();
    for (index, (what, target, queries)) in kinds.into_iter().enumerate() {
        let scope = if index == 4 { &district } else { &scope };
        let mut times = Vec::new();
        let mut hits = 0;
        for query in &queries {
            let started = Instant::now();
            let page = search::search(&conn, scope, query)?;
            times.push(started.elapsed());
            hits += page.total;
        }
        results.push(Measured {
            what,
            target,
            times,
            hits,
        });
    }
    let mut times = Vec::new();
    let mut pages = 0;
    for (id, ..) in &samples {
        let started = Instant::now();
        pages += search::page_list(&conn, *id)?.len() as u64;
        times.push(started.elapsed());
    }
    results.push(Measured {
        what: "a business file's page list",
        target: None,
        times,
        hits: pages,
    });
    println!(
        "\n{:<30} {:>7} {:>10} {:>10} {:>10} {:>12}  target p99",
        "search", "queries", "p50", "p99", "max", "mean hits"
    );
    for mut measured in results {
        measured.times.sort();
        let p99 = percentile(&measured.times, 0.99);
        let verdict = match measured.target {
            Some(target) if p99 < target => format!("< {target:?}: met"),
            Some(target) => format!("< {target:?}: MISSED"),
            None => "-".to_owned(),
        };
        println!(
            "{:<30} {:>7} {:>10.2?} {:>10.2?} {:>10.2?} {:>12.1}  {verdict}",
            measured.what,
            measured.times.len(),
            percentile(&measured.times, 0.5),
            p99,
            measured.times.last().copied().unwrap_or_default(),
            measured.hits as f64 / measured.times.len() as f64,
        );
    }
    Ok(())
}
