//! How long the rest of a run will take at the pace of its first steps, in words a log reader
//! takes in at a glance: a user who starts Koch's 105 px network on a laptop CPU should learn
//! from its first steps that it needs days there, not after an evening of waiting.

/// `seconds` rounded to what matters at its scale: `40 s`, `12 min`, `2 h 05 min`, `58 h`.
pub fn rough_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3_600 {
        format!("{} min", (s + 30) / 60)
    } else {
        let minutes = (s + 30) / 60;
        let (h, m) = (minutes / 60, minutes % 60);
        if h >= 10 {
            format!("{} h", (minutes + 30) / 60)
        } else {
            format!("{h} h {m:02} min")
        }
    }
}

/// The projected time for `steps_left` steps at `seconds_per_step`.
pub fn remaining(seconds_per_step: f64, steps_left: u64) -> String {
    rough_duration(seconds_per_step * steps_left as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_to_their_scale() {
        assert_eq!(rough_duration(0.4), "0 s");
        assert_eq!(rough_duration(59.4), "59 s");
        assert_eq!(rough_duration(59.6), "1 min");
        assert_eq!(rough_duration(12.0 * 60.0 + 29.0), "12 min");
        assert_eq!(rough_duration(12.0 * 60.0 + 31.0), "13 min");
        assert_eq!(rough_duration(3_600.0), "1 h 00 min");
        // The shipped run: 4,191 s.
        assert_eq!(rough_duration(4_191.0), "1 h 10 min");
        assert_eq!(rough_duration(9.0 * 3_600.0 + 59.0 * 60.0), "9 h 59 min");
        assert_eq!(rough_duration(10.0 * 3_600.0 + 29.0 * 60.0), "10 h");
        assert_eq!(rough_duration(10.0 * 3_600.0 + 31.0 * 60.0), "11 h");
        assert_eq!(rough_duration(-5.0), "0 s");
    }

    #[test]
    fn the_reference_recipe_on_two_cores_reads_in_hours() {
        // 128 pairs a step at 9.1 pairs/s (README, Performance), 500 steps an epoch, 30 epochs.
        let per_step = 128.0 / 9.1;
        assert_eq!(remaining(per_step, 500 * 30), "59 h");
        assert_eq!(remaining(per_step, 0), "0 s");
    }
}
