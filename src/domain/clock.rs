use chrono::{DateTime, FixedOffset};

/// The offset of the shops' wall clock (China Standard Time): FAQ validity windows, business
/// hours and times written without an offset are read in it.
pub const SHOP_OFFSET_SECONDS: i32 = 8 * 3600;

/// Now, on the shops' clock. The one place the runtime asks for the time, so a test or a replay
/// passes its own instant everywhere else.
pub fn now() -> DateTime<FixedOffset> {
    let tz = FixedOffset::east_opt(SHOP_OFFSET_SECONDS).expect("valid offset");
    chrono::Utc::now().with_timezone(&tz)
}
