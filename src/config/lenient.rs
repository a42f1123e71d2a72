//! Typing a TOML tree the way Beats types its settings: variables are resolved first, then a
//! string is read as a number or a boolean where the option wants one. After `${VAR}`
//! expansion `events = "${QUEUE_EVENTS:4096}"` holds the string "4096"; Filebeat accepts it
//! for a numeric option, and so does this deserializer.
//!
//! `Lenient` wraps a `toml::Value` and answers serde exactly as `toml::Value` does, except that
//! when the target type asks for an integer, a float or a boolean and the value is a string that
//! parses as one, the parsed value is handed over. Strings stay strings everywhere else, so a
//! string option whose value looks like a number (`topic = "2024"`, a numeric password) is not
//! changed. The conversion looks at the type asked for, not at the value, which is why it sits
//! in the deserializer rather than in a pass over the tree.

use std::fmt;

use serde::de::{self, IntoDeserializer, Visitor};
use toml::Value;

/// A TOML value to deserialize with string → number/boolean conversion.
pub struct Lenient(pub Value);

/// A deserialization error: only the message (the key path is added by the caller).
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    // Go's strconv.ParseBool, as Beats' configuration library uses it.
    match s.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

macro_rules! integer {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            if let Value::String(s) = &self.0 {
                let t = s.trim();
                if let Ok(n) = t.parse::<i64>() {
                    return visitor.visit_i64(n);
                }
                if let Ok(n) = t.parse::<u64>() {
                    return visitor.visit_u64(n);
                }
            }
            self.deserialize_any(visitor)
        }
    )*};
}

macro_rules! float {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            if let Value::String(s) = &self.0 {
                if let Ok(n) = s.trim().parse::<f64>() {
                    return visitor.visit_f64(n);
                }
            }
            self.deserialize_any(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Boolean(v) => visitor.visit_bool(v),
            Value::Integer(n) => visitor.visit_i64(n),
            Value::Float(n) => visitor.visit_f64(n),
            Value::String(v) => visitor.visit_string(v),
            Value::Datetime(v) => visitor.visit_string(v.to_string()),
            Value::Array(v) => {
                let len = v.len();
                let mut seq = Seq(v.into_iter());
                let out = visitor.visit_seq(&mut seq)?;
                if seq.0.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(len, &"fewer elements in array"))
                }
            }
            Value::Table(t) => {
                let len = t.len();
                let mut map = Map {
                    iter: t.into_iter(),
                    value: None,
                };
                let out = visitor.visit_map(&mut map)?;
                if map.iter.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(len, &"fewer elements in table"))
                }
            }
        }
    }

    integer!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
             deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);
    float!(deserialize_f32 deserialize_f64);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Value::String(s) = &self.0 {
            if let Some(b) = parse_bool(s) {
                return visitor.visit_bool(b);
            }
        }
        self.deserialize_any(visitor)
    }

    // A present key is `Some`: absence is a missing field, as in `toml::Value`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(variant.into_deserializer()),
            Value::Table(t) if t.len() == 1 => {
                let (variant, value) = t.into_iter().next().expect("one entry");
                visitor.visit_enum(Enum { variant, value })
            }
            Value::Table(t) => Err(de::Error::custom(format!(
                "expected a table with exactly one key (the variant), found {} keys",
                t.len()
            ))),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a string or a table with one key",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::String(s) => de::Unexpected::Str(s),
        Value::Integer(n) => de::Unexpected::Signed(*n),
        Value::Float(n) => de::Unexpected::Float(*n),
        Value::Boolean(b) => de::Unexpected::Bool(*b),
        Value::Datetime(_) => de::Unexpected::Other("a datetime"),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Table(_) => de::Unexpected::Map,
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.0.next() {
            Some(v) => seed.deserialize(Lenient(v)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map {
    iter: <toml::Table as IntoIterator>::IntoIter,
    value: Option<Value>,
}

impl<'de> de::MapAccess<'de> for Map {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("value asked for before its key"))?;
        seed.deserialize(Lenient(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Enum {
    variant: String,
    value: Value,
}

impl<'de> de::EnumAccess<'de> for Enum {
    type Error = Error;
    type Variant = Lenient;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Lenient), Error> {
        let name = seed.deserialize(self.variant.into_deserializer())?;
        Ok((name, Lenient(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for Lenient {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use crate::config::units::{ByteSize, Dur};
    use crate::config::{typed, Secret};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct T {
        #[serde(default)]
        n: usize,
        #[serde(default)]
        i: i16,
        #[serde(default)]
        f: f64,
        #[serde(default)]
        b: bool,
        #[serde(default)]
        s: String,
        #[serde(default)]
        o: Option<u32>,
        #[serde(default)]
        list: Vec<u16>,
        #[serde(default)]
        secret: Option<Secret>,
        #[serde(default)]
        d: Option<Dur>,
        #[serde(default)]
        size: Option<ByteSize>,
        #[serde(default)]
        e: Option<E>,
        #[serde(default)]
        raw: Option<toml::Value>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum E {
        Plain,
        Wrapped { x: u8 },
    }

    fn t(text: &str) -> Result<T, crate::config::ConfigError> {
        typed::<T>(text.parse::<toml::Value>().unwrap(), "")
    }

    #[test]
    fn strings_become_numbers_and_booleans_where_the_option_wants_them() {
        let v = t(r#"n = "5"
i = " -3 "
f = "0.5"
b = "true"
s = "42"
o = "7"
list = ["1", 2]
secret = "12345"
d = "10s"
size = "1MiB"
e = "plain"
raw = { x = "1" }"#)
        .unwrap();
        assert_eq!((v.n, v.i, v.f, v.b, v.o), (5, -3, 0.5, true, Some(7)));
        assert_eq!(v.s, "42", "a string option keeps its string");
        assert_eq!(v.list, vec![1, 2]);
        assert_eq!(v.secret.unwrap().expose(), "12345");
        assert_eq!(v.d.unwrap().0.as_secs(), 10);
        assert_eq!(v.size.unwrap().0, 1 << 20);
        assert_eq!(v.e, Some(E::Plain));
        assert_eq!(
            v.raw.unwrap()["x"].as_str(),
            Some("1"),
            "raw tables stay as written"
        );
        let v = t("e = { wrapped = { x = \"9\" } }").unwrap();
        assert_eq!(v.e, Some(E::Wrapped { x: 9 }));
    }

    #[test]
    fn what_does_not_parse_still_fails_with_the_key_path() {
        let e = t("n = \"five\"").unwrap_err();
        assert_eq!(e.key, "n");
        assert!(e.message.contains("expected usize"), "{e}");
        let e = t("list = [1, \"x\"]").unwrap_err();
        assert_eq!(e.key, "list[1]");
        let e = t("i = \"70000\"").unwrap_err();
        assert!(e.message.contains("i16"), "{e}");
        let e = t("nope = 1").unwrap_err();
        assert!(e.message.contains("unknown field `nope`"), "{e}");
        // Secrets are still never echoed.
        let e = t("secret = [\"hunter2\"]").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
