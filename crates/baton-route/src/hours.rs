//! Business hours: when humans staff a queue, in the queue's own time zone, with several periods
//! a day and holidays; and the clock that SLA timers run on (only open time counts).
//!
//! Time zones come from the IANA database bundled into the binary (jiff), so a server in UTC
//! serves a Berlin queue correctly through daylight-saving changes. A period that crosses a
//! clock change is taken in civil time: 09:00-17:00 is eight wall-clock hours' worth of
//! instants, seven or nine on the day the clocks move.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Business hours as a policy writes them.
///
/// ```yaml
/// hours:
///   timezone: Europe/Berlin
///   mon: ["09:00-12:30", "13:30-18:00"]
///   sat: ["10:00-14:00"]
///   holidays: [2026-12-25, 2026-12-26]
/// ```
/// A day that is not listed is closed. `24:00` ends a period at midnight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// IANA time zone, e.g. `Europe/Berlin`, `America/New_York`, `UTC`.
    pub timezone: String,
    /// Monday's periods, `HH:MM-HH:MM`.
    #[serde(default)]
    pub mon: Vec<String>,
    /// Tuesday's periods.
    #[serde(default)]
    pub tue: Vec<String>,
    /// Wednesday's periods.
    #[serde(default)]
    pub wed: Vec<String>,
    /// Thursday's periods.
    #[serde(default)]
    pub thu: Vec<String>,
    /// Friday's periods.
    #[serde(default)]
    pub fri: Vec<String>,
    /// Saturday's periods.
    #[serde(default)]
    pub sat: Vec<String>,
    /// Sunday's periods.
    #[serde(default)]
    pub sun: Vec<String>,
    /// Closed all day on these dates (`YYYY-MM-DD`, in the queue's time zone).
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// Business hours, checked and ready to answer questions.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    /// Periods per weekday, Monday first, as (start, end) minutes of the day.
    week: [Vec<(u16, u16)>; 7],
    holidays: Vec<Date>,
}

/// How far ahead the schedule looks for the next open period (a long holiday season fits).
const HORIZON_DAYS: i32 = 400;

impl BusinessHours {
    /// Checks the hours and builds the [`Schedule`].
    ///
    /// # Errors
    /// A message naming the field and the fix: an unknown time zone, a period that is not
    /// `HH:MM-HH:MM` or ends before it starts, overlapping periods, a date that is not
    /// `YYYY-MM-DD`, or a week with no open period at all.
    pub fn schedule(&self) -> Result<Schedule, String> {
        let tz = TimeZone::get(&self.timezone).map_err(|_| {
            format!(
                "`timezone`: `{}` is not an IANA time zone: use a name like `Europe/Berlin` or `UTC`",
                self.timezone
            )
        })?;
        let days = [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ];
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for (i, (day, periods)) in days.iter().enumerate() {
            for (j, p) in periods.iter().enumerate() {
                week[i].push(parse_period(p).map_err(|e| format!("`{day}[{j}]`: {e}"))?);
            }
            week[i].sort_unstable();
            if week[i].windows(2).any(|w| w[1].0 < w[0].1) {
                return Err(format!(
                    "`{day}`: periods overlap: list each stretch of the day once"
                ));
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err(
                "no open period on any day: list periods under `mon` to `sun`, or drop `hours` for a queue that is always open"
                    .to_owned(),
            );
        }
        let holidays = self
            .holidays
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.parse::<Date>()
                    .map_err(|_| format!("`holidays[{i}]`: `{d}` is not a date: write YYYY-MM-DD"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Schedule { tz, week, holidays })
    }
}

fn parse_period(text: &str) -> Result<(u16, u16), String> {
    let hint = || format!("`{text}` is not a period: write HH:MM-HH:MM, e.g. 09:00-17:30");
    let (a, b) = text.split_once('-').ok_or_else(hint)?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (start, end) = (minutes(a).ok_or_else(hint)?, minutes(b).ok_or_else(hint)?);
    if end <= start {
        return Err(format!(
            "`{text}` ends before it starts: split a period that crosses midnight over two days"
        ));
    }
    Ok((start, end))
}

impl Schedule {
    /// The open periods of `date`, as millisecond intervals, earliest first.
    fn periods(&self, date: Date) -> Vec<(Millis, Millis)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let day = date.weekday().to_monday_zero_offset() as usize;
        self.week[day]
            .iter()
            .filter_map(|&(s, e)| Some((self.instant(date, s)?, self.instant(date, e)?)))
            .filter(|(s, e)| e > s)
            .collect()
    }

    /// The instant of `minute` (0..=1440) of `date` in the schedule's zone.
    fn instant(&self, date: Date, minute: u16) -> Option<Millis> {
        let (date, minute) = if minute >= 1440 {
            (date.tomorrow().ok()?, 0)
        } else {
            (date, minute)
        };
        let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
        let zoned = date.to_datetime(time).to_zoned(self.tz.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    }

    fn date_of(&self, at: Millis) -> Option<Date> {
        let ts = Timestamp::from_millisecond(at).ok()?;
        Some(ts.to_zoned(self.tz.clone()).date())
    }

    /// Open periods that end after `from`, in order, clipped to start no earlier than `from`,
    /// over the next [`HORIZON_DAYS`] days.
    fn open_from(&self, from: Millis) -> impl Iterator<Item = (Millis, Millis)> + '_ {
        // Start a day early: a period of yesterday's date cannot reach into today here (periods
        // end by midnight), but the zone's offset can put `from` on a different civil date.
        let first = self.date_of(from).and_then(|d| d.yesterday().ok());
        (0..HORIZON_DAYS + 1)
            .map_while(move |i| first.and_then(|d| d.checked_add(jiff::Span::new().days(i)).ok()))
            .flat_map(move |d| self.periods(d))
            .filter(move |&(_, e)| e > from)
            .map(move |(s, e)| (s.max(from), e))
    }

    /// Whether the queue is open at `at`.
    pub fn is_open(&self, at: Millis) -> bool {
        self.open_from(at).next().is_some_and(|(s, _)| s <= at)
    }

    /// The next instant at or after `at` when the queue is open, if within about a year.
    pub fn next_open(&self, at: Millis) -> Option<Millis> {
        self.open_from(at).next().map(|(s, _)| s)
    }

    /// The instant when `seconds` of open time have passed since `from`: the SLA clock, which
    /// stops while the queue is closed. `None` when the schedule has no open time within about
    /// a year.
    pub fn after_open_seconds(&self, from: Millis, seconds: u64) -> Option<Millis> {
        let mut left = i64::try_from(seconds).ok()?.saturating_mul(1000);
        for (s, e) in self.open_from(from) {
            if e - s >= left {
                return Some(s + left);
            }
            left -= e - s;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Millis {
        text.parse::<Timestamp>()
            .expect("timestamp")
            .as_millisecond()
    }

    fn berlin() -> Schedule {
        BusinessHours {
            timezone: "Europe/Berlin".into(),
            mon: vec!["09:00-12:30".into(), "13:30-18:00".into()],
            tue: vec!["09:00-18:00".into()],
            wed: vec!["09:00-18:00".into()],
            thu: vec!["09:00-18:00".into()],
            fri: vec!["09:00-17:00".into()],
            sat: vec![],
            sun: vec![],
            holidays: vec!["2026-12-25".into()],
        }
        .schedule()
        .expect("valid")
    }

    #[test]
    fn open_and_closed_follow_the_queue_time_zone_and_holidays() {
        let s = berlin();
        // Monday 2026-11-23 08:30 UTC is 09:30 in Berlin (UTC+1 in winter): open.
        assert!(s.is_open(at("2026-11-23T08:30:00Z")));
        // 11:45 UTC is 12:45 Berlin: the lunch gap.
        assert!(!s.is_open(at("2026-11-23T11:45:00Z")));
        assert_eq!(
            s.next_open(at("2026-11-23T11:45:00Z")),
            Some(at("2026-11-23T12:30:00Z"))
        );
        // Saturday: closed until Monday 09:00 Berlin.
        assert_eq!(
            s.next_open(at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-30T08:00:00Z"))
        );
        // Christmas Day (a Friday) is a holiday.
        assert!(!s.is_open(at("2026-12-25T10:00:00Z")));
        // Summer time: 09:00 Berlin is 07:00 UTC on Monday 2026-06-01.
        assert!(s.is_open(at("2026-06-01T07:00:00Z")));
        assert!(!s.is_open(at("2026-06-01T06:59:00Z")));
    }

    #[test]
    fn the_sla_clock_stops_while_closed() {
        let s = berlin();
        // Friday 16:50 Berlin with a 20-minute SLA: 10 minutes on Friday, 10 on Monday.
        let due = s.after_open_seconds(at("2026-11-27T15:50:00Z"), 1200);
        assert_eq!(due, Some(at("2026-11-30T08:10:00Z")));
        // Inside one period the clock is the wall clock.
        assert_eq!(
            s.after_open_seconds(at("2026-11-24T09:00:00Z"), 60),
            Some(at("2026-11-24T09:01:00Z"))
        );
    }

    #[test]
    fn bad_hours_are_explained() {
        let mut h = BusinessHours {
            timezone: "Mars/Olympus".into(),
            mon: vec!["09:00-17:00".into()],
            tue: vec![],
            wed: vec![],
            thu: vec![],
            fri: vec![],
            sat: vec![],
            sun: vec![],
            holidays: vec![],
        };
        assert!(h.schedule().expect_err("zone").contains("IANA"));
        h.timezone = "UTC".into();
        h.mon = vec!["17:00-09:00".into()];
        assert!(h.schedule().expect_err("order").contains("midnight"));
        h.mon = vec!["9-17".into()];
        assert!(h.schedule().expect_err("form").contains("HH:MM"));
        h.mon = vec!["09:00-12:00".into(), "11:00-13:00".into()];
        assert!(h.schedule().expect_err("overlap").contains("overlap"));
        h.mon = vec!["00:00-24:00".into()];
        h.holidays = vec!["25.12.2026".into()];
        assert!(h.schedule().expect_err("date").contains("YYYY-MM-DD"));
        h.holidays.clear();
        let s = h.schedule().expect("valid");
        assert!(s.is_open(at("2026-11-23T23:59:00Z")));
    }
}
