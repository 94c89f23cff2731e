//! Number flags: clap's error (exit 2) for what is not a finite,
//! non-negative number, instead of a panic further on (`NaN` seconds).

/// A finite number, zero or more: `1`, `0.5`, `1e3`; not `NaN`, `inf`, `-1`.
pub(crate) fn non_negative(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !value.is_finite() {
        return Err(format!("{text:?} is not a finite number"));
    }
    if value < 0.0 {
        return Err(format!("{text:?} is negative"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finite_non_negative_numbers_pass() {
        assert_eq!(non_negative("0.5"), Ok(0.5));
        assert_eq!(non_negative("25"), Ok(25.0));
        for bad in ["NaN", "nan", "inf", "-inf", "infinity", "-1", "x", ""] {
            assert!(non_negative(bad).is_err(), "{bad}");
        }
    }
}
