//! Link bandwidth in scenario files: `100Mbps`, `1Gbps`, `512kbps`, `9600bps`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Bits per second, always > 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bandwidth {
    pub bits_per_s: u64,
}

const UNITS: [(&str, u64); 4] = [
    ("gbps", 1_000_000_000),
    ("mbps", 1_000_000),
    ("kbps", 1_000),
    ("bps", 1),
];

pub fn parse_bandwidth(text: &str) -> Result<Bandwidth, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, scale) = UNITS
        .iter()
        .find_map(|(unit, scale)| {
            lower
                .strip_suffix(unit)
                .map(|n| (n.trim().to_owned(), *scale))
        })
        .ok_or_else(|| {
            format!("`{text}` has no unit; write e.g. `100Mbps`, `1Gbps` or `512kbps`")
        })?;
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a number followed by bps, kbps, Mbps or Gbps"))?;
    let bits_per_s = value * scale as f64;
    if !(1.0..=1e15).contains(&bits_per_s) {
        return Err(format!(
            "`{text}` is out of range; use between 1bps and 1000000Gbps"
        ));
    }
    Ok(Bandwidth {
        bits_per_s: bits_per_s.round() as u64,
    })
}

impl Bandwidth {
    /// Time to put `bytes` on the wire, in nanoseconds (rounded up).
    pub fn serialization_ns(self, bytes: u64) -> u64 {
        let bits = u128::from(bytes) * 8 * 1_000_000_000;
        bits.div_ceil(u128::from(self.bits_per_s))
            .min(u128::from(u64::MAX)) as u64
    }
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bandwidth;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bandwidth such as `100Mbps`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bandwidth, E> {
                parse_bandwidth(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bandwidth, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write e.g. `{v}Mbps`"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bandwidth, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write e.g. `100Mbps`"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Bandwidth, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write e.g. `{v}Mbps`"
                )))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_bandwidth("100Mbps").unwrap().bits_per_s, 100_000_000);
        assert_eq!(parse_bandwidth("1 Gbps").unwrap().bits_per_s, 1_000_000_000);
        assert_eq!(parse_bandwidth("1.5kbps").unwrap().bits_per_s, 1_500);
        assert_eq!(parse_bandwidth("9600bps").unwrap().bits_per_s, 9_600);
        assert!(parse_bandwidth("100").unwrap_err().contains("no unit"));
        assert!(parse_bandwidth("0Mbps").is_err());
        assert!(parse_bandwidth("-1Mbps").is_err());
    }

    #[test]
    fn serialization_time_is_exact() {
        // 1,000 bytes at 1 Mbps = 8 ms.
        assert_eq!(
            parse_bandwidth("1Mbps").unwrap().serialization_ns(1_000),
            8_000_000
        );
        assert_eq!(
            parse_bandwidth("3bps").unwrap().serialization_ns(1),
            2_666_666_667
        );
    }
}
