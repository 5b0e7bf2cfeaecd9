//! Probabilities and shares in scenario files: `0.05` or `"5%"`, always within [0, 1].

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Probability(pub f64);

fn checked(v: f64, written: &str) -> Result<Probability, String> {
    if v.is_nan() || !(0.0..=1.0).contains(&v) {
        Err(format!(
            "`{written}` is not a probability; write a value between 0 and 1 (0.05) or a percentage up to 100% (\"5%\")"
        ))
    } else {
        Ok(Probability(v))
    }
}

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Probability;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a probability between 0 and 1, or a percentage such as \"5%\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Probability, E> {
                checked(v, &v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Probability, E> {
                checked(v as f64, &v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Probability, E> {
                checked(v as f64, &v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Probability, E> {
                let percent = v.trim().strip_suffix('%').ok_or_else(|| {
                    E::custom(format!("`{v}` is not a probability; write 0.05 or \"5%\""))
                })?;
                let value: f64 = percent.trim().parse().map_err(|_| {
                    E::custom(format!("`{v}` is not a percentage; write e.g. \"5%\""))
                })?;
                checked(value / 100.0, v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}
