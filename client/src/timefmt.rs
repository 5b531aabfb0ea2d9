//! Server timestamps (UTC milliseconds since the Unix epoch) as calendar text.
//!
//! The server stamps every message with its own clock as a plain integer; turning that into `2026-11-27` needs the
//! Gregorian calendar. The trick used here (after Howard Hinnant's public `civil_from_days` derivation) is to shift
//! the year so it starts on 1 March: the leap day then falls at the very end of a year, every month before it has a
//! fixed length pattern (31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, then 28 or 29), and a 400-year *era* of
//! exactly 146 097 days repeats for ever. A day number then splits with a few integer divisions into era, year of
//! era, day of year, month and day: no loops, no tables, correct for every `i64` input including dates before 1970.
//!
//! Two formats come out: RFC 3339 (`2026-11-27T10:04:05.123Z`), the machine format of the CLI's `--json` output,
//! and a readable one (`2026-11-27 10:04:05`) for people. Both are UTC, stated as such, because the server's clock
//! is the one clock of a conversation and a class may sit in different time zones.

/// Milliseconds in a day.
const MS_PER_DAY: i64 = 86_400_000;

/// Days from 0000-03-01 (the start of a shifted era) to 1970-01-01.
const DAYS_FROM_ERA_START_TO_UNIX_EPOCH: i64 = 719_468;

/// Days in a 400-year Gregorian cycle: 400 × 365 + 97 leap days.
const DAYS_PER_ERA: i64 = 146_097;

/// A calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Proleptic Gregorian year (may be negative or beyond 9999 for absurd inputs).
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59 (Unix time has no leap seconds).
    pub second: u32,
    /// 0 to 999.
    pub millisecond: u32,
}

impl CivilTime {
    /// The UTC calendar time of `unix_ms` milliseconds since 1970-01-01T00:00:00Z.
    pub fn from_unix_ms(unix_ms: i64) -> CivilTime {
        let days = unix_ms.div_euclid(MS_PER_DAY);
        // In [0, MS_PER_DAY), so every conversion below is lossless.
        let ms_of_day = unix_ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let part = |value: i64| u32::try_from(value).unwrap_or(0);
        CivilTime {
            year,
            month,
            day,
            hour: part(ms_of_day / 3_600_000),
            minute: part(ms_of_day / 60_000 % 60),
            second: part(ms_of_day / 1_000 % 60),
            millisecond: part(ms_of_day % 1_000),
        }
    }
}

/// Year, month and day of the day `days` after 1970-01-01 (negative for earlier days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // |days| < 2^57 for any i64 of milliseconds, so this addition cannot overflow.
    let z = days + DAYS_FROM_ERA_START_TO_UNIX_EPOCH;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA); // [0, 146096]
    // Years in the era: remove the leap days (one every 4 years, none every 100, one again every 400).
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    // Months from March: 153 days per 5 months (31+30+31+30+31) is the repeating pattern.
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 }; // [1, 12]
    // January and February belong to the next calendar year in the March-based count.
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// RFC 3339 UTC with milliseconds: `2026-11-27T10:04:05.123Z`.
pub fn rfc3339_utc(unix_ms: i64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
    )
}

/// Readable UTC to the second: `2026-11-27 10:04:05`.
pub fn readable_utc(unix_ms: i64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z", "leap day of a 400-year leap year");
        assert_eq!(rfc3339_utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z", "2100 is not a leap year");
        assert_eq!(rfc3339_utc(1_798_365_845_123), "2026-12-27T10:04:05.123Z");
        assert_eq!(readable_utc(1_795_773_845_999), "2026-11-27 10:04:05");
    }

    #[test]
    fn before_the_epoch() {
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_utc(-86_400_000), "1969-12-31T00:00:00.000Z");
        assert_eq!(rfc3339_utc(-62_135_596_800_000), "0001-01-01T00:00:00.000Z");
    }

    #[test]
    fn extremes_do_not_panic() {
        let min = CivilTime::from_unix_ms(i64::MIN);
        let max = CivilTime::from_unix_ms(i64::MAX);
        assert!(min.year < -290_000_000 && max.year > 290_000_000);
        assert!((1..=12).contains(&max.month) && (1..=31).contains(&max.day));
    }

    /// Days since 1970-01-01 of a civil date, by counting: the slow, obviously right inverse.
    fn days_by_counting(year: i64, month: u32, day: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut days = 0i64;
        for y in 1970..year {
            days += if leap(y) { 366 } else { 365 };
        }
        for m in 1..month {
            days += month_days(year, m);
        }
        days + i64::from(day) - 1
    }

    proptest! {
        #[test]
        fn agrees_with_counting(days in 0i64..200_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert_eq!(days_by_counting(year, month, day), days);
        }

        #[test]
        fn fields_are_in_range(ms in any::<i64>()) {
            let t = CivilTime::from_unix_ms(ms);
            prop_assert!((1..=12).contains(&t.month));
            prop_assert!((1..=31).contains(&t.day));
            prop_assert!(t.hour < 24 && t.minute < 60 && t.second < 60 && t.millisecond < 1000);
        }
    }
}
