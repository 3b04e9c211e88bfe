//! The `dates` task: one date written in many human styles → ISO 8601, "Mar 3, 21" → "2021-03-03",
//! with a small Gregorian calendar (leap years, weekdays from a day count) to make the dates.

use rand::Rng;

use crate::data::Example;

/// First year of the task; two-digit years 50–99 mean 1950–1999.
pub const FIRST_YEAR: i32 = 1950;
/// Last year of the task; two-digit years 00–49 mean 2000–2049.
pub const LAST_YEAR: i32 = 2049;

/// Month names, January first.
pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Weekday names, Monday first (ISO 8601 order).
pub const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Whether `year` has a February 29th: every fourth year, except centuries not divisible by 400.
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The year a two-digit year stands for in this task: 50–99 → 1950–1999, 00–49 → 2000–2049.
pub fn expand_two_digit_year(yy: u32) -> i32 {
    let yy = (yy % 100) as i32;
    if yy >= FIRST_YEAR % 100 { 1900 + yy } else { 2000 + yy }
}

/// `day` with its English ordinal suffix: 1st 2nd 3rd 4th … 11th 12th 13th … 21st 22nd 23rd … 31st.
pub fn ordinal(day: u32) -> String {
    let suffix = match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{day}{suffix}")
}

/// Days from 0001-01-01 to January 1st of `year`: 365 a year plus one per leap year before it.
fn days_before_year(year: i32) -> i64 {
    let y = i64::from(year) - 1;
    365 * y + y / 4 - y / 100 + y / 400
}

/// A day of the Gregorian calendar (proleptic: the same rules before 1582), year 1 or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// The year, e.g. 2021.
    pub year: i32,
    /// The month, 1–12.
    pub month: u32,
    /// The day of the month, 1–31.
    pub day: u32,
}

impl Date {
    /// The date, or `None` if it is not on the calendar (February 30th, month 13, year 0).
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        let valid = year >= 1 && (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
        valid.then_some(Date { year, month, day })
    }

    /// Days since 0001-01-01 (day 0, a Monday).
    pub fn day_number(self) -> i64 {
        let days_before_month: u32 = (1..self.month).map(|m| days_in_month(self.year, m)).sum();
        days_before_year(self.year) + i64::from(days_before_month) + i64::from(self.day) - 1
    }

    /// The date `n` days after 0001-01-01; the inverse of [`Date::day_number`] for `n >= 0`.
    pub fn from_day_number(n: i64) -> Date {
        // 400 Gregorian years are exactly 146,097 days; estimate the year, then correct it.
        let mut year = (n * 400 / 146_097) as i32 + 1;
        while days_before_year(year) > n {
            year -= 1;
        }
        while days_before_year(year + 1) <= n {
            year += 1;
        }
        let mut rest = (n - days_before_year(year)) as u32;
        let mut month = 1;
        while rest >= days_in_month(year, month) {
            rest -= days_in_month(year, month);
            month += 1;
        }
        Date { year, month, day: rest + 1 }
    }

    /// Day of the week, 0 = Monday … 6 = Sunday: day 0 (0001-01-01) was a Monday.
    pub fn weekday(self) -> usize {
        self.day_number().rem_euclid(7) as usize
    }

    /// The weekday's name, "Monday" … "Sunday".
    pub fn weekday_name(self) -> &'static str {
        WEEKDAYS[self.weekday()]
    }

    /// The month's name, "January" … "December".
    pub fn month_name(self) -> &'static str {
        MONTHS[self.month as usize - 1]
    }

    /// ISO 8601, the task's target: "2021-03-03".
    pub fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// The date written in `style`.
    ///
    /// ```
    /// use transformer::data::tasks::dates::{Date, Style};
    ///
    /// let date = Date::new(2021, 3, 3).unwrap();
    /// assert_eq!(date.format(Style::WeekdayMonthOrdinalYear), "Wednesday, March 3rd 2021");
    /// assert_eq!(date.format(Style::ShortMonthDayShortYear), "Mar 3, 21");
    /// ```
    pub fn format(self, style: Style) -> String {
        let Date { year, month, day } = self;
        let (month_name, short_month) = (self.month_name(), &self.month_name()[..3]);
        let (weekday, short_weekday) = (self.weekday_name(), &self.weekday_name()[..3]);
        let yy = year % 100;
        match style {
            Style::DayMonthYear => format!("{day} {month_name} {year}"),
            Style::ShortMonthDayShortYear => format!("{short_month} {day}, {yy:02}"),
            Style::Slashed => format!("{month:02}/{day:02}/{year}"),
            Style::WeekdayMonthOrdinalYear => format!("{weekday}, {month_name} {} {year}", ordinal(day)),
            Style::Dotted => format!("{year}.{month:02}.{day:02}"),
            Style::OrdinalOfMonthYear => format!("{} of {month_name} {year}", ordinal(day)),
            Style::MonthDayYear => format!("{month_name} {day}, {year}"),
            Style::ShortMonthDayYear => format!("{short_month} {day}, {year}"),
            Style::ShortWeekdayDayShortMonthYear => format!("{short_weekday} {day} {short_month} {year}"),
            Style::Dashed => format!("{day}-{short_month}-{year}"),
            Style::SlashedShortYear => format!("{month:02}/{day:02}/{yy:02}"),
            Style::SlashedUnpadded => format!("{month}/{day}/{year}"),
            Style::Iso => self.iso(),
            Style::LowercaseMonthOrdinalYear => format!("{} {}, {year}", month_name.to_lowercase(), ordinal(day)),
        }
    }
}

/// The ways the task writes a date, shown for Wednesday 3 March 2021.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// "3 March 2021"
    DayMonthYear,
    /// "Mar 3, 21"
    ShortMonthDayShortYear,
    /// "03/03/2021" (month/day/year)
    Slashed,
    /// "Wednesday, March 3rd 2021"
    WeekdayMonthOrdinalYear,
    /// "2021.03.03"
    Dotted,
    /// "3rd of March 2021"
    OrdinalOfMonthYear,
    /// "March 3, 2021"
    MonthDayYear,
    /// "Mar 3, 2021"
    ShortMonthDayYear,
    /// "Wed 3 Mar 2021"
    ShortWeekdayDayShortMonthYear,
    /// "3-Mar-2021"
    Dashed,
    /// "03/03/21" (month/day/year)
    SlashedShortYear,
    /// "3/3/2021" (month/day/year)
    SlashedUnpadded,
    /// "2021-03-03", already the answer
    Iso,
    /// "march 3rd, 2021"
    LowercaseMonthOrdinalYear,
}

impl Style {
    /// Every style; the task picks one uniformly for each example.
    pub const ALL: [Style; 14] = [
        Style::DayMonthYear,
        Style::ShortMonthDayShortYear,
        Style::Slashed,
        Style::WeekdayMonthOrdinalYear,
        Style::Dotted,
        Style::OrdinalOfMonthYear,
        Style::MonthDayYear,
        Style::ShortMonthDayYear,
        Style::ShortWeekdayDayShortMonthYear,
        Style::Dashed,
        Style::SlashedShortYear,
        Style::SlashedUnpadded,
        Style::Iso,
        Style::LowercaseMonthOrdinalYear,
    ];
}

/// A date drawn uniformly from 1950-01-01 to 2049-12-31.
pub fn random_date<R: Rng + ?Sized>(rng: &mut R) -> Date {
    let first = Date { year: FIRST_YEAR, month: 1, day: 1 }.day_number();
    let last = Date { year: LAST_YEAR, month: 12, day: 31 }.day_number();
    Date::from_day_number(rng.random_range(first..=last))
}

/// One example: a uniform random date in a uniform random style → its ISO form.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> Example {
    let date = random_date(rng);
    let style = Style::ALL[rng.random_range(0..Style::ALL.len())];
    Example::new(date.format(style), date.iso())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn date(year: i32, month: u32, day: u32) -> Date {
        Date::new(year, month, day).unwrap()
    }

    #[test]
    fn leap_years() {
        for (year, leap) in [(2000, true), (1900, false), (2100, false), (2024, true), (2023, false), (1952, true)] {
            assert_eq!(is_leap_year(year), leap, "{year}");
        }
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2021, 2), 28);
        assert_eq!(days_in_month(2021, 4), 30);
        assert_eq!(days_in_month(2021, 12), 31);
    }

    #[test]
    fn invalid_dates_are_rejected() {
        assert_eq!(Date::new(2021, 2, 29), None);
        assert_eq!(Date::new(2021, 13, 1), None);
        assert_eq!(Date::new(2021, 4, 31), None);
        assert_eq!(Date::new(2021, 1, 0), None);
        assert_eq!(Date::new(0, 1, 1), None);
        assert!(Date::new(2020, 2, 29).is_some());
    }

    #[test]
    fn known_weekdays() {
        assert_eq!(date(2021, 3, 3).weekday_name(), "Wednesday");
        assert_eq!(date(2000, 1, 1).weekday_name(), "Saturday");
        assert_eq!(date(1950, 1, 1).weekday_name(), "Sunday");
        assert_eq!(date(2049, 12, 31).weekday_name(), "Friday");
        assert_eq!(date(1970, 1, 1).weekday_name(), "Thursday");
        assert_eq!(date(2024, 2, 29).weekday_name(), "Thursday");
        assert_eq!(date(1969, 7, 20).weekday_name(), "Sunday");
        assert_eq!(date(1, 1, 1).weekday_name(), "Monday");
    }

    #[test]
    fn day_numbers_are_consecutive_and_invert() {
        let mut n = date(1949, 12, 31).day_number();
        for year in 1950..=2050 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    let d = date(year, month, day);
                    assert_eq!(d.day_number(), n + 1, "{}", d.iso());
                    n += 1;
                    assert_eq!(Date::from_day_number(n), d);
                }
            }
        }
        assert_eq!(date(2050, 1, 1).day_number() - date(1950, 1, 1).day_number(), 36_525);
    }

    #[test]
    fn ordinals() {
        let expected = [
            (1, "1st"),
            (2, "2nd"),
            (3, "3rd"),
            (4, "4th"),
            (10, "10th"),
            (11, "11th"),
            (12, "12th"),
            (13, "13th"),
            (20, "20th"),
            (21, "21st"),
            (22, "22nd"),
            (23, "23rd"),
            (24, "24th"),
            (30, "30th"),
            (31, "31st"),
        ];
        for (day, text) in expected {
            assert_eq!(ordinal(day), text);
        }
    }

    #[test]
    fn every_style_of_one_date() {
        let d = date(2021, 3, 3);
        let formatted: Vec<String> = Style::ALL.iter().map(|&style| d.format(style)).collect();
        assert_eq!(
            formatted,
            [
                "3 March 2021",
                "Mar 3, 21",
                "03/03/2021",
                "Wednesday, March 3rd 2021",
                "2021.03.03",
                "3rd of March 2021",
                "March 3, 2021",
                "Mar 3, 2021",
                "Wed 3 Mar 2021",
                "3-Mar-2021",
                "03/03/21",
                "3/3/2021",
                "2021-03-03",
                "march 3rd, 2021",
            ]
        );
    }

    #[test]
    fn slashes_put_the_month_first_and_short_years_pad() {
        let d = date(2005, 11, 22);
        assert_eq!(d.format(Style::Slashed), "11/22/2005");
        assert_eq!(d.format(Style::SlashedShortYear), "11/22/05");
        assert_eq!(d.format(Style::SlashedUnpadded), "11/22/2005");
        assert_eq!(d.format(Style::ShortMonthDayShortYear), "Nov 22, 05");
        assert_eq!(date(1999, 1, 9).format(Style::SlashedUnpadded), "1/9/1999");
        assert_eq!(date(1999, 12, 31).format(Style::WeekdayMonthOrdinalYear), "Friday, December 31st 1999");
        assert_eq!(date(1950, 9, 1).format(Style::ShortWeekdayDayShortMonthYear), "Fri 1 Sep 1950");
    }

    #[test]
    fn two_digit_years_cover_exactly_the_task_range() {
        for year in FIRST_YEAR..=LAST_YEAR {
            assert_eq!(expand_two_digit_year((year % 100) as u32), year);
        }
    }

    #[test]
    fn samples_are_in_range_and_targets_are_iso() {
        let mut rng = StdRng::seed_from_u64(1);
        let (mut first, mut last) = (date(2049, 12, 31), date(1950, 1, 1));
        for _ in 0..20_000 {
            let d = random_date(&mut rng);
            first = first.min(d);
            last = last.max(d);
            let example = sample(&mut rng);
            let (y, m, dd) = (&example.target[..4], &example.target[5..7], &example.target[8..]);
            let parsed = Date::new(y.parse().unwrap(), m.parse().unwrap(), dd.parse().unwrap()).unwrap();
            assert!((FIRST_YEAR..=LAST_YEAR).contains(&parsed.year), "{example:?}");
            assert_eq!(parsed.iso(), example.target);
        }
        assert!(first < date(1951, 1, 1) && last > date(2048, 12, 31), "{first:?}..{last:?}");
    }
}
