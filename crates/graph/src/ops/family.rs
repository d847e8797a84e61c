//! The one list each op family is declared from.
//!
//! [`family!`] takes an enum whose every variant carries its op name (`Exp => "exp"`) and
//! generates the enum, its `name()` and its `NAMES` list from that one declaration, so the
//! names that tests, the derivative-table check and the random DAGs iterate over cannot drift
//! from the variants. Families whose variants carry no data also get `ALL`, every variant in
//! declaration order.

/// Declares a family enum with `name()` and `NAMES` (and `ALL` when it is written
/// `unit enum`) generated from the variant list.
macro_rules! family {
    (
        $(#[$meta:meta])*
        pub unit enum $family:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $name:literal ),* $(,)?
        }
    ) => {
        family! {
            $(#[$meta])*
            pub enum $family { $( $(#[$vmeta])* $variant => $name ),* }
        }
        impl $family {
            /// Every member of the family, in declaration order.
            pub const ALL: &'static [$family] = &[$($family::$variant),*];
        }
    };
    (
        $(#[$meta:meta])*
        pub enum $family:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident
                $( ( $($tuple:ty),* ) )?
                $( { $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)? } )?
                => $name:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $family {
            $(
                $(#[$vmeta])*
                $variant
                $( ( $($tuple),* ) )?
                $( { $( $(#[$fmeta])* $field : $fty ),* } )?
            ),*
        }
        impl $family {
            /// The names of the family's ops, one per variant, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The op's name as used in node names, errors and DOT output.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $family::$variant { .. } => $name ),*
                }
            }
        }
    };
}
