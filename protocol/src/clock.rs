//! The unix time a driver feeds its node, kept from a monotonic clock anchored to the wall clock at
//! start. A wall clock stepped back (NTP, an operator) would otherwise freeze the node, whose time
//! never runs backwards, for as long as the step; a wall clock stepped forward would fire every
//! timer in between at once. Both drivers use this type, so the simulation's clock steps exercise
//! the production rule.
//!
//! The rule: the node's time runs at the monotonic clock's rate. Each [`Clock::follow`] compares it
//! with the wall clock. Within [`STEP_MS`] nothing changes. A wall clock further ahead is followed
//! at once (time jumps forward, as after a pause). A wall clock further behind is followed by
//! slewing: the node's time runs at nine tenths of the rate until it has caught up, so it never
//! stands still and never runs backwards.

/// A difference from the wall clock larger than this is a step, to follow and to report.
pub const STEP_MS: u64 = 1_000;
/// While slewing back, the node's time gives up at most this share of the time that passes.
const SLEW_DIVISOR: u64 = 10;

/// A node's clock. `mono_ms` is any monotonic clock in milliseconds (the driver's choice of
/// origin); `wall_ms` is unix time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The node's unix time at `anchor_mono`.
    unix_at_anchor: u64,
    anchor_mono: u64,
    /// Wall clock minus node time at the last [`Clock::follow`], and when (monotonic) it was.
    offset_ms: i64,
    followed_mono: u64,
}

impl Clock {
    pub fn new(wall_ms: u64, mono_ms: u64) -> Clock {
        Clock {
            unix_at_anchor: wall_ms,
            anchor_mono: mono_ms,
            offset_ms: 0,
            followed_mono: mono_ms,
        }
    }

    /// The node's unix time at `mono_ms`.
    pub fn now(&self, mono_ms: u64) -> u64 {
        self.unix_at_anchor + mono_ms.saturating_sub(self.anchor_mono)
    }

    /// When, on the monotonic clock, the node's time reaches `unix_ms` (now, if it has).
    pub fn mono_at(&self, unix_ms: u64) -> u64 {
        self.anchor_mono + unix_ms.saturating_sub(self.unix_at_anchor)
    }

    /// Wall clock minus node time, as of the last [`Clock::follow`].
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Compares with the wall clock and follows it as the module says. Returns the offset (wall
    /// minus node time, before following) when the wall clock stepped since the last call: a
    /// moment the driver should log.
    pub fn follow(&mut self, wall_ms: u64, mono_ms: u64) -> Option<i64> {
        let ours = self.now(mono_ms);
        let offset = wall_ms as i64 - ours as i64;
        let stepped = offset.abs_diff(self.offset_ms) > STEP_MS;
        let passed = mono_ms.saturating_sub(self.followed_mono);
        self.followed_mono = mono_ms;
        let step = STEP_MS as i64;
        if offset > step {
            *self = Clock::new(wall_ms, mono_ms);
        } else if offset < -step {
            let back = offset.unsigned_abs().min(passed / SLEW_DIVISOR);
            self.unix_at_anchor = ours - back;
            self.anchor_mono = mono_ms;
            self.offset_ms = offset + back as i64;
        } else {
            self.offset_ms = offset;
        }
        stepped.then_some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;

    #[test]
    fn follows_steps_forward_at_once_and_back_by_slewing() {
        let mut clock = Clock::new(T0, 0);
        assert_eq!(clock.now(5_000), T0 + 5_000);
        // Small differences are the monotonic clock's own rate: left alone.
        assert_eq!(clock.follow(T0 + 5_400, 5_000), None);
        assert_eq!(clock.now(5_000), T0 + 5_000);
        // Forward 30 s: followed at once, reported once.
        assert_eq!(clock.follow(T0 + 40_000, 10_000), Some(30_000));
        assert_eq!(clock.now(10_000), T0 + 40_000);
        assert_eq!(clock.follow(T0 + 41_000, 11_000), None);
        // Back 60 s: time keeps running, at nine tenths of the rate, until it has caught up.
        let wall = |mono: u64| T0 + 30_000 + mono - 60_000;
        assert_eq!(clock.follow(wall(20_000), 20_000), Some(-60_000));
        let mut last = clock.now(20_000);
        for mono in (21_000..700_000).step_by(1_000) {
            clock.follow(wall(mono), mono);
            let now = clock.now(mono);
            assert!(now > last, "never stands still");
            last = now;
        }
        assert!(clock.offset_ms().unsigned_abs() <= STEP_MS);
        assert_eq!(clock.mono_at(clock.now(700_000) + 5), 700_005);
    }
}
