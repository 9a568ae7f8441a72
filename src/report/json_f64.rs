//! f64 in JSON that survives a round trip: finite values as numbers, NaN (a value that does not
//! exist, such as the accuracy of least squares) as `null`, and ±∞ (a diverged loss) as the
//! strings `"inf"` and `"-inf"` — JSON has no infinities, and serde_json would write `null`.
//! Used with `#[serde(with = "crate::report::json_f64")]`.

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_none()
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
    } else {
        s.serialize_f64(*v)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Number(f64),
    Text(String),
    Null(()),
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Option::<Repr>::deserialize(d)? {
        None | Some(Repr::Null(())) => Ok(f64::NAN),
        Some(Repr::Number(v)) => Ok(v),
        Some(Repr::Text(t)) => match t.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!("`{other}` is not a number"))),
        },
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    struct V(#[serde(with = "super")] f64);

    #[test]
    fn every_f64_survives_a_round_trip() {
        for v in [0.1 + 0.2, -3e-300, 1.7976931348623157e308, f64::INFINITY, f64::NEG_INFINITY] {
            let text = serde_json::to_string(&V(v)).unwrap();
            assert_eq!(serde_json::from_str::<V>(&text).unwrap().0.to_bits(), v.to_bits(), "{text}");
        }
        let text = serde_json::to_string(&V(f64::NAN)).unwrap();
        assert_eq!(text, "null");
        assert!(serde_json::from_str::<V>(&text).unwrap().0.is_nan());
    }
}
