//! How the options chosen by a word (face mode, explanation method, ...)
//! are named: one macro gives each such enum its list of names, its
//! `Display` and its `FromStr`, so flags, config and the API spell them
//! alike and a wrong word's error lists the right ones.

macro_rules! named_values {
    ($ty:ty, $what:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            /// Every value's name, as config, flags and the API spell it.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " {:?}: expected one of {}"),
                        s,
                        Self::NAMES.join(", ")
                    )),
                }
            }
        }
    };
}

pub(crate) use named_values;
