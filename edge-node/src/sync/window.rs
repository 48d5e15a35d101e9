//! Sync windows: when the edge may use the line to the hub, e.g.
//! `Mon-Fri 19:00-07:00` (weekday evenings through the next morning) or
//! `Sat-Sun 00:00-24:00`, read in the edge's configured time zone.
use std::fmt;
use std::str::FromStr;

use jiff::Zoned;
use jiff::civil::Weekday;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Days of the week and a time range. A range that passes midnight
/// (`19:00-07:00`) belongs to the day it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    /// Minutes after midnight.
    start: u32,
    end: u32,
    text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{text:?} is not a sync window ({problem}); write days and a time range, e.g. \"Mon-Fri 19:00-07:00\", \"Sat,Sun 00:00-24:00\" or \"daily 22:00-06:00\""
)]
pub struct WindowError {
    text: String,
    problem: &'static str,
}

impl Window {
    /// Whether `now` (in any zone; it is read in `zone`) lies inside.
    pub fn contains(&self, now: &Zoned, zone: &jiff::tz::TimeZone) -> bool {
        let local = now.with_time_zone(zone.clone());
        let day = day_index(local.weekday());
        let minute =
            u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs());
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }
}

/// Whether sync may run now: inside any window, or always when none is set.
pub fn open_now(windows: &[Window], now: &Zoned, zone: &jiff::tz::TimeZone) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(now, zone))
}

fn day_index(day: Weekday) -> usize {
    day.to_monday_zero_offset().unsigned_abs() as usize
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |problem| WindowError {
            text: text.to_owned(),
            problem,
        };
        let mut parts = text.split_whitespace();
        let (days_text, range_text) = match (parts.next(), parts.next(), parts.next()) {
            (Some(range), None, None) => ("daily", range),
            (Some(days), Some(range), None) => (days, range),
            _ => return Err(error("expected days and a time range")),
        };
        let mut days = [false; 7];
        let lower = days_text.to_ascii_lowercase();
        if lower == "daily" || lower == "*" {
            days = [true; 7];
        } else {
            for item in lower.split(',') {
                let day = |name: &str| {
                    DAY_NAMES
                        .iter()
                        .position(|d| name.starts_with(d))
                        .ok_or_else(|| error("unknown day name"))
                };
                match item.split_once('-') {
                    Some((first, last)) => {
                        let (first, last) = (day(first)?, day(last)?);
                        let mut d = first;
                        loop {
                            days[d] = true;
                            if d == last {
                                break;
                            }
                            d = (d + 1) % 7;
                        }
                    }
                    None => days[day(item)?] = true,
                }
            }
        }
        let (start, end) = range_text
            .split_once('-')
            .ok_or_else(|| error("expected a time range such as 19:00-07:00"))?;
        let minutes = |t: &str| -> Result<u32, WindowError> {
            let (h, m) = t.split_once(':').ok_or_else(|| error("times are HH:MM"))?;
            let (h, m): (u32, u32) = (
                h.parse().map_err(|_| error("times are HH:MM"))?,
                m.parse().map_err(|_| error("times are HH:MM"))?,
            );
            if m > 59 || h > 24 || (h == 24 && m > 0) {
                return Err(error("times run from 00:00 to 24:00"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minutes(start)?, minutes(end)?);
        if start == end {
            return Err(error("the range is empty"));
        }
        if start == 24 * 60 {
            return Err(error("a range cannot start at 24:00"));
        }
        Ok(Self {
            days,
            start,
            end,
            text: text.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Zoned {
        // 2026-11-23 is a Monday.
        format!("{text}[Asia/Shanghai]").parse().unwrap()
    }

    fn shanghai() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn weekday_evenings_run_into_the_next_morning() {
        let w: Window = "Mon-Fri 19:00-07:00".parse().unwrap();
        let tz = shanghai();
        assert!(
            !w.contains(&at("2026-11-23T18:59"), &tz),
            "Monday before 19:00"
        );
        assert!(w.contains(&at("2026-11-23T19:00"), &tz), "Monday 19:00");
        assert!(
            w.contains(&at("2026-11-24T06:59"), &tz),
            "Tuesday early (Monday's night)"
        );
        assert!(!w.contains(&at("2026-11-24T07:00"), &tz), "Tuesday 07:00");
        assert!(
            w.contains(&at("2026-11-28T03:00"), &tz),
            "Saturday early (Friday's night)"
        );
        assert!(
            !w.contains(&at("2026-11-28T20:00"), &tz),
            "Saturday evening"
        );
        assert!(
            !w.contains(&at("2026-11-23T03:00"), &tz),
            "Monday early (Sunday's night)"
        );
    }

    #[test]
    fn whole_days_and_lists() {
        let w: Window = "Sat,Sun 00:00-24:00".parse().unwrap();
        let tz = shanghai();
        assert!(w.contains(&at("2026-11-29T23:59"), &tz));
        assert!(!w.contains(&at("2026-11-30T00:00"), &tz));
        let daily: Window = "22:00-06:00".parse().unwrap();
        assert!(daily.contains(&at("2026-11-25T23:00"), &tz));
    }

    #[test]
    fn reads_the_time_in_the_configured_zone() {
        let w: Window = "daily 19:00-20:00".parse().unwrap();
        // 11:30 UTC is 19:30 in Shanghai.
        let utc: Zoned = "2026-11-25T11:30[UTC]".parse().unwrap();
        assert!(w.contains(&utc, &shanghai()));
        assert!(!w.contains(&utc, &jiff::tz::TimeZone::UTC));
        assert!(open_now(&[], &utc, &shanghai()));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "",
            "Mon-Fri",
            "Funday 10:00-11:00",
            "Mon 25:00-26:00",
            "Mon 10:00-10:00",
            "Mon 10-11",
        ] {
            let err = bad.parse::<Window>().unwrap_err();
            assert!(err.to_string().contains("Mon-Fri 19:00-07:00"), "{err}");
        }
    }
}
