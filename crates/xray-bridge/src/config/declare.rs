//! The `settings!` macro: one declaration per setting, from which the command line
//! ([`Options`](super::Options), with clap's environment support), the config-file keys,
//! the defaults and the merged [`Settings`](super::Settings) are all generated.
//!
//! An entry reads:
//!
//! ```text
//! /// Help text (also the field's doc comment).
//! #[arg(long, short = 'n', env = "XRAY_BRIDGE_REGION", value_name = "R")]
//! region: String [= DEFAULT] [, list = ITEM] [, parse = PARSER] [, yaml = "DaemonKey.Path"];
//! ```
//!
//! - `#[arg(...)]`: clap's attributes (flag names, the environment variable).
//! - `= DEFAULT`: the value when no source sets it; the merged field then has type `T`.
//!   Without it the merged field is `Option<T>`.
//! - `parse = PARSER`: an `fn(&str) -> Result<T, String>` that reads and checks the value,
//!   from the flag, the environment and both files alike; the default is `T`'s `FromStr`.
//! - `list = ITEM`: a repeatable setting of type `Vec<ITEM>` (its `#[arg]` says
//!   `action = Append`): the parser reads one item, a file gives a list (a TOML array, or
//!   items separated by `,`), and a higher source's list replaces a lower one's.
//! - `yaml = "..."`: the key in the X-Ray daemon's `cfg.yaml` (nested keys joined with
//!   `.`), when the daemon has one. The TOML key is always the long flag name.

/// Declares every setting once; see the module documentation.
macro_rules! settings {
    (
        $(
            $(#[doc = $doc:literal])*
            #[arg($($arg:tt)*)]
            $name:ident : $ty:ty
                $(= $default:expr)?
                $(, list = $item:ty)?
                $(, parse = $parse:expr)?
                $(, yaml = $yaml:literal)?
            ;
        )*
    ) => {
        /// Every setting as one source gives it (`None`: that source does not set it).
        /// The command line fills it from flags and `XRAY_BRIDGE_*` variables; a config
        /// file fills another one, merged below it.
        #[derive(Debug, Default, Clone, PartialEq, clap::Args)]
        pub struct Options {
            $(
                $(#[doc = $doc])*
                #[arg($($arg)*)]
                #[arg(value_parser = settings!(@parser [$($item)?] $ty $(, $parse)?))]
                pub $name: Option<$ty>,
            )*
        }

        /// The merged configuration the bridge runs with.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                pub $name: settings!(@merged $ty $(, $default)?),
            )*
        }

        /// The name of every setting, with its daemon `cfg.yaml` key when it has one.
        pub const SETTINGS: &[SettingKeys] = &[
            $(
                SettingKeys {
                    field: stringify!($name),
                    yaml: settings!(@yaml $($yaml)?),
                },
            )*
        ];

        impl Options {
            /// Sets the setting named `field` (its Rust name) from text, with its parser.
            fn set_text(&mut self, field: &str, text: &str) -> Result<(), String> {
                match field {
                    $(
                        stringify!($name) => {
                            let parse = settings!(@parser [$($item)?] $ty $(, $parse)?);
                            self.$name = Some(settings!(@read [$($item)?] parse, text));
                        }
                    )*
                    other => return Err(format!("`{other}` is not a setting")),
                }
                Ok(())
            }

            /// Each setting from `self` when it sets it, else from `lower`.
            pub fn or(self, lower: Options) -> Options {
                Options {
                    $( $name: self.$name.or(lower.$name), )*
                }
            }

            /// Fills what no source set with the defaults.
            fn with_defaults(self) -> Settings {
                Settings {
                    $( $name: settings!(@value self.$name $(, $default)?), )*
                }
            }
        }

        impl Settings {
            /// Each setting as `key = value`, one a line, in declaration order.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    out.push_str(&format!(
                        "{} = {:?}\n",
                        stringify!($name).replace('_', "-"),
                        self.$name
                    ));
                )*
                out
            }
        }
    };
    // A fn pointer of the field's type: a parser of another type fails to compile (clap
    // would only find out at run time).
    (@parser [] $ty:ty) => {{
        let parse: fn(&str) -> Result<$ty, String> = $crate::config::values::parse_from_str::<$ty>;
        parse
    }};
    (@parser [] $ty:ty, $parse:expr) => {{
        let parse: fn(&str) -> Result<$ty, String> = $parse;
        parse
    }};
    // A list's parser reads one item.
    (@parser [$item:ty] $ty:ty) => {{
        let parse: fn(&str) -> Result<$item, String> = $crate::config::values::parse_from_str::<$item>;
        parse
    }};
    (@parser [$item:ty] $ty:ty, $parse:expr) => {{
        let parse: fn(&str) -> Result<$item, String> = $parse;
        parse
    }};
    (@read [] $parse:ident, $text:expr) => { $parse($text)? };
    (@read [$item:ty] $parse:ident, $text:expr) => {
        $text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map($parse)
            .collect::<Result<Vec<_>, String>>()?
    };
    (@merged $ty:ty) => { Option<$ty> };
    (@merged $ty:ty, $default:expr) => { $ty };
    (@value $v:expr) => { $v };
    (@value $v:expr, $default:expr) => { $v.unwrap_or_else(|| $default) };
    (@yaml) => { None };
    (@yaml $yaml:literal) => { Some($yaml) };
}

pub(crate) use settings;
