//! Exact cty numbers.
//!
//! cty numbers are arbitrary-precision (Go `big.Float` at 512 bits, parsed from decimal
//! text), so a provider must not squeeze them through `f64`: `0.1` arrives as the string
//! `"0.1"` and has to go back out unchanged. [`Number`] stores an exact decimal, with an
//! allocation-free fast path for integers that fit an `i64` (nearly every number a
//! provider sees: sizes, counts, ports).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Above this many zeros of padding [`Number`]'s `Display` switches to scientific form,
/// so that a hostile `"1e999999999"` cannot make us print a gigabyte of zeros.
const PLAIN_ZEROS_LIMIT: i64 = 40;

/// An exact cty number: any integer, any finite decimal fraction, any `f64` (stored as
/// its exact binary value), or ±infinity.
///
/// Equality, ordering and hashing are by numeric value, so
/// `Number::from_i64(5) == Number::parse("5.0").unwrap()` and
/// `Number::from_f64(0.5) == Number::parse("5e-1").unwrap()`. Note that
/// `Number::from_f64(0.1)` is the binary value nearest to 0.1, not `Number::parse("0.1")`.
#[derive(Clone)]
pub struct Number(Repr);

/// Canonical form, so that derived equality is numeric equality: a value that is an
/// integer within `i64` range is always `Int`; `Big` digits have no leading or trailing
/// zeros.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Int(i64),
    /// Boxed so a `Number` stays two words.
    Big(Box<Decimal>),
    PosInf,
    NegInf,
}

/// `(-1)^neg × digits × 10^exp`, digits as ASCII, never empty.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Decimal {
    neg: bool,
    digits: Box<[u8]>,
    exp: i64,
}

/// A borrowed sign/digits/exponent view, so comparisons treat `Int` and `Big` alike.
#[derive(Clone, Copy)]
struct View<'a> {
    neg: bool,
    /// Empty for zero.
    digits: &'a [u8],
    exp: i64,
}

impl Number {
    /// The number `v`.
    pub fn from_i64(v: i64) -> Number {
        Number(Repr::Int(v))
    }

    /// The number `v`.
    pub fn from_u64(v: u64) -> Number {
        match i64::try_from(v) {
            Ok(i) => Number(Repr::Int(i)),
            Err(_) => {
                let mut buf = [0u8; 20];
                let (digits, exp) = u64_digits(v, &mut buf);
                Number(Repr::Big(Box::new(Decimal { neg: false, digits: digits.into(), exp })))
            }
        }
    }

    /// The exact value of `v` (so `from_f64(0.1)` is 0.1000000000000000055511151231257827…).
    /// Infinities are allowed, as cty allows them on the wire.
    ///
    /// # Panics
    ///
    /// If `v` is NaN, which is not a number in cty either; see [`Number::try_from_f64`].
    pub fn from_f64(v: f64) -> Number {
        Number::try_from_f64(v).expect("NaN is not a cty number")
    }

    /// Like [`Number::from_f64`], but `None` for NaN.
    pub fn try_from_f64(v: f64) -> Option<Number> {
        if v.is_nan() {
            return None;
        }
        if v.is_infinite() {
            return Some(Number(if v > 0.0 { Repr::PosInf } else { Repr::NegInf }));
        }
        // -2^63 <= v < 2^63 are exactly the floats whose integer values fit an i64.
        const TWO_POW_63: f64 = (1u64 << 63) as f64;
        if v.trunc() == v && (-TWO_POW_63..TWO_POW_63).contains(&v) {
            return Some(Number(Repr::Int(v as i64)));
        }
        Some(exact_f64(v))
    }

    /// Parses decimal text: an optional sign, digits with an optional decimal point, and
    /// an optional exponent (`"-1.5e-30"`, `"0.1"`, `"12345678901234567890123"`). Also
    /// accepts `Inf`/`Infinity` (any case, optional sign) as cty's parser does.
    pub fn parse(s: &str) -> Result<Number, String> {
        parse_decimal(s.as_bytes()).ok_or_else(|| {
            let shown: String = s.chars().take(64).collect();
            format!("invalid number {shown:?}")
        })
    }

    /// The value as an `i64`, if it is an integer in range.
    pub fn to_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Int(v) => Some(v),
            // Canonical form puts every integer in i64 range into `Int`.
            _ => None,
        }
    }

    /// The value as a `u64`, if it is an integer in range.
    pub fn to_u64(&self) -> Option<u64> {
        match &self.0 {
            Repr::Int(v) => u64::try_from(*v).ok(),
            Repr::Big(d) if !d.neg && d.exp >= 0 && d.digits.len() as i64 + d.exp <= 20 => {
                let mut acc: u64 = 0;
                for &c in d.digits.iter() {
                    acc = acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                }
                for _ in 0..d.exp {
                    acc = acc.checked_mul(10)?;
                }
                Some(acc)
            }
            _ => None,
        }
    }

    /// The nearest `f64` (round half to even; ±infinity beyond the `f64` range).
    pub fn to_f64(&self) -> f64 {
        match &self.0 {
            // `as` rounds to nearest, ties to even.
            Repr::Int(v) => *v as f64,
            Repr::PosInf => f64::INFINITY,
            Repr::NegInf => f64::NEG_INFINITY,
            Repr::Big(d) => {
                // std's decimal parser rounds correctly for any number of digits, which
                // saves us a big-float implementation.
                let mut text = String::with_capacity(d.digits.len() + 24);
                if d.neg {
                    text.push('-');
                }
                text.push_str(digits_str(&d.digits));
                text.push('e');
                text.push_str(&d.exp.to_string());
                text.parse().unwrap_or(f64::NAN)
            }
        }
    }

    /// The `f64` equal to this number, if there is one (infinities included). This is
    /// the test cty applies before sending a non-integer as a msgpack float.
    pub fn to_f64_exact(&self) -> Option<f64> {
        match &self.0 {
            Repr::Int(v) => {
                let f = *v as f64;
                // 2^63 rounds to a float that is out of i64 range; compare in i128.
                (f as i128 == i128::from(*v)).then_some(f)
            }
            Repr::PosInf => Some(f64::INFINITY),
            Repr::NegInf => Some(f64::NEG_INFINITY),
            Repr::Big(d) => {
                // A fraction m/10^k in lowest terms is a binary fraction only if 5^k
                // divides m, i.e. its last digit is 5: cheap rejection of "0.1" and friends.
                if d.exp < 0 && d.digits.last() != Some(&b'5') {
                    return None;
                }
                let f = self.to_f64();
                (f.is_finite() && exact_f64(f) == *self).then_some(f)
            }
        }
    }

    /// True for integers (of any size); false for fractions and infinities.
    pub fn is_integer(&self) -> bool {
        match &self.0 {
            Repr::Int(_) => true,
            Repr::Big(d) => d.exp >= 0,
            Repr::PosInf | Repr::NegInf => false,
        }
    }

    /// True for ±infinity.
    pub fn is_infinite(&self) -> bool {
        matches!(self.0, Repr::PosInf | Repr::NegInf)
    }

    /// Runs `f` on a sign/digits/exponent view of a finite number.
    fn with_view<R>(&self, f: impl FnOnce(View<'_>) -> R) -> R {
        match &self.0 {
            Repr::Int(v) => {
                let mut buf = [0u8; 20];
                let (digits, exp) = u64_digits(v.unsigned_abs(), &mut buf);
                f(View { neg: *v < 0, digits, exp })
            }
            Repr::Big(d) => f(View { neg: d.neg, digits: &d.digits, exp: d.exp }),
            Repr::PosInf | Repr::NegInf => unreachable!("infinities have no digits"),
        }
    }
}

/// The decimal digits of `v` without trailing zeros, and how many zeros were dropped.
fn u64_digits(mut v: u64, buf: &mut [u8; 20]) -> (&[u8], i64) {
    if v == 0 {
        return (&[], 0);
    }
    let mut exp = 0;
    while v % 10 == 0 {
        v /= 10;
        exp += 1;
    }
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    (&buf[i..], exp)
}

fn digits_str(digits: &[u8]) -> &str {
    // Digits are ASCII by construction.
    std::str::from_utf8(digits).expect("ASCII digits")
}

/// Builds the canonical number `(-1)^neg × digits × 10^exp` (`digits` without leading
/// zeros; trailing zeros allowed). `None` if the exponent overflows.
fn from_parts(neg: bool, mut digits: Vec<u8>, mut exp: i64) -> Option<Number> {
    while digits.last() == Some(&b'0') {
        digits.pop();
        exp = exp.checked_add(1)?;
    }
    if digits.is_empty() {
        return Some(Number(Repr::Int(0)));
    }
    // Keeps `digits.len() + exp` arithmetic (comparison, display) far from overflow; no
    // real number is anywhere near 10^(2^61).
    if exp.unsigned_abs() > 1 << 61 {
        return None;
    }
    if exp >= 0 && digits.len() as i64 + exp <= 19 {
        let mut mag: u64 = 0;
        for &c in &digits {
            mag = mag * 10 + u64::from(c - b'0');
        }
        for _ in 0..exp {
            mag *= 10;
        }
        if !neg && mag <= i64::MAX as u64 {
            return Some(Number(Repr::Int(mag as i64)));
        }
        if neg && mag <= 1u64 << 63 {
            return Some(Number(Repr::Int((mag as i64).wrapping_neg())));
        }
    }
    Some(Number(Repr::Big(Box::new(Decimal { neg, digits: digits.into_boxed_slice(), exp }))))
}

fn parse_decimal(s: &[u8]) -> Option<Number> {
    let (neg, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.first()?.is_ascii_alphabetic() {
        return if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            Some(Number(if neg { Repr::NegInf } else { Repr::PosInf }))
        } else {
            None
        };
    }
    // Fast path: short plain integers, the overwhelmingly common case.
    if body.len() <= 18 && body.iter().all(u8::is_ascii_digit) {
        let mut v: i64 = 0;
        for &c in body {
            v = v * 10 + i64::from(c - b'0');
        }
        return Some(Number(Repr::Int(if neg { -v } else { v })));
    }

    let mut digits = Vec::with_capacity(body.len());
    let mut i = 0;
    let mut seen_digit = false;
    while i < body.len() && body[i].is_ascii_digit() {
        if !digits.is_empty() || body[i] != b'0' {
            digits.push(body[i]);
        }
        seen_digit = true;
        i += 1;
    }
    let mut frac_len: i64 = 0;
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_digit() {
            if !digits.is_empty() || body[i] != b'0' {
                digits.push(body[i]);
            }
            frac_len += 1;
            seen_digit = true;
            i += 1;
        }
    }
    if !seen_digit {
        return None;
    }
    let mut exp: i64 = 0;
    if i < body.len() && (body[i] == b'e' || body[i] == b'E') {
        i += 1;
        let exp_neg = match body.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < body.len() && body[i].is_ascii_digit() {
            exp = exp.checked_mul(10)?.checked_add(i64::from(body[i] - b'0'))?;
            i += 1;
        }
        if i == start {
            return None;
        }
        if exp_neg {
            exp = -exp;
        }
    }
    if i != body.len() {
        return None;
    }
    from_parts(neg, digits, exp.checked_sub(frac_len)?)
}

/// The exact decimal value of a finite `f64` (which always has a finite expansion).
fn exact_f64(v: f64) -> Number {
    let bits = v.to_bits();
    let neg = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (mut mant, mut exp2) = if biased == 0 { (frac, -1074) } else { (frac | (1u64 << 52), biased - 1075) };
    if mant == 0 {
        return Number(Repr::Int(0));
    }
    let tz = mant.trailing_zeros();
    mant >>= tz;
    exp2 += i64::from(tz);
    let mut big = BigUint::from_u64(mant);
    let exp10 = if exp2 >= 0 {
        big.mul_pow2(exp2 as u32);
        0
    } else {
        // m × 2^-k = m × 5^k × 10^-k.
        big.mul_pow5((-exp2) as u32);
        exp2
    };
    from_parts(neg, big.to_decimal(), exp10).expect("f64 exponents are small")
}

/// Just enough of an unsigned big integer for `exact_f64`: little-endian base-10^9 limbs,
/// so that printing needs no division.
struct BigUint(Vec<u32>);

const LIMB: u64 = 1_000_000_000;

impl BigUint {
    fn from_u64(mut v: u64) -> BigUint {
        let mut limbs = Vec::with_capacity(4);
        while v > 0 {
            limbs.push((v % LIMB) as u32);
            v /= LIMB;
        }
        BigUint(limbs)
    }

    /// Multiplies by `f` (below 2^31, so limb × f + carry fits a u64).
    fn mul_small(&mut self, f: u32) {
        let mut carry: u64 = 0;
        for limb in &mut self.0 {
            let t = u64::from(*limb) * u64::from(f) + carry;
            *limb = (t % LIMB) as u32;
            carry = t / LIMB;
        }
        while carry > 0 {
            self.0.push((carry % LIMB) as u32);
            carry /= LIMB;
        }
    }

    fn mul_pow2(&mut self, mut n: u32) {
        while n > 0 {
            let step = n.min(30);
            self.mul_small(1 << step);
            n -= step;
        }
    }

    fn mul_pow5(&mut self, mut n: u32) {
        while n > 0 {
            let step = n.min(13); // 5^13 < 2^31
            self.mul_small(5u32.pow(step));
            n -= step;
        }
    }

    fn to_decimal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 9);
        let mut iter = self.0.iter().rev();
        if let Some(top) = iter.next() {
            out.extend_from_slice(top.to_string().as_bytes());
        }
        for limb in iter {
            out.extend_from_slice(format!("{limb:09}").as_bytes());
        }
        out
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        self.0 == other.0
    }
}

impl Eq for Number {}

impl Hash for Number {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::Int(a), Repr::Int(b)) => a.cmp(b),
            (Repr::NegInf, Repr::NegInf) | (Repr::PosInf, Repr::PosInf) => Ordering::Equal,
            (Repr::NegInf, _) | (_, Repr::PosInf) => Ordering::Less,
            (_, Repr::NegInf) | (Repr::PosInf, _) => Ordering::Greater,
            _ => self.with_view(|a| other.with_view(|b| cmp_views(a, b))),
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn cmp_views(a: View<'_>, b: View<'_>) -> Ordering {
    let sign = |v: &View<'_>| {
        if v.digits.is_empty() {
            0
        } else if v.neg {
            -1
        } else {
            1
        }
    };
    let (sa, sb) = (sign(&a), sign(&b));
    if sa != sb || sa == 0 {
        return sa.cmp(&sb);
    }
    // The magnitude is in [10^(adj-1), 10^adj); with equal adj, digit strings compare
    // lexicographically because neither has trailing zeros.
    let adj = |v: &View<'_>| v.digits.len() as i64 + v.exp;
    let magnitude = adj(&a).cmp(&adj(&b)).then_with(|| a.digits.cmp(b.digits));
    if sa < 0 {
        magnitude.reverse()
    } else {
        magnitude
    }
}

impl fmt::Display for Number {
    /// Plain decimal text (`42`, `-0.125`, `100000000000000000000`); scientific
    /// (`1.5e-300`) only when plain text would need more than 40 padding zeros;
    /// `+Inf`/`-Inf` for infinities. [`Number::parse`] reads it all back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match &self.0 {
            Repr::Int(v) => return write!(f, "{v}"),
            Repr::PosInf => return f.write_str("+Inf"),
            Repr::NegInf => return f.write_str("-Inf"),
            Repr::Big(d) => d,
        };
        if d.neg {
            f.write_str("-")?;
        }
        let digits = digits_str(&d.digits);
        let n = digits.len() as i64;
        let point = n + d.exp;
        if d.exp >= 0 && d.exp <= PLAIN_ZEROS_LIMIT {
            f.write_str(digits)?;
            write_zeros(f, d.exp)
        } else if d.exp < 0 && point > 0 {
            let (int, frac) = digits.split_at(point as usize);
            write!(f, "{int}.{frac}")
        } else if d.exp < 0 && -point <= PLAIN_ZEROS_LIMIT {
            f.write_str("0.")?;
            write_zeros(f, -point)?;
            f.write_str(digits)
        } else {
            let (first, rest) = digits.split_at(1);
            f.write_str(first)?;
            if !rest.is_empty() {
                write!(f, ".{rest}")?;
            }
            let e = point - 1;
            if e >= 0 {
                write!(f, "e+{e}")
            } else {
                write!(f, "e{e}")
            }
        }
    }
}

fn write_zeros(f: &mut fmt::Formatter<'_>, n: i64) -> fmt::Result {
    for _ in 0..n {
        f.write_str("0")?;
    }
    Ok(())
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({self})")
    }
}

impl FromStr for Number {
    type Err = String;

    /// Same as [`Number::parse`].
    fn from_str(s: &str) -> Result<Number, String> {
        Number::parse(s)
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Number {
        Number::from_i64(v)
    }
}

impl From<i32> for Number {
    fn from(v: i32) -> Number {
        Number::from_i64(v.into())
    }
}

impl From<u64> for Number {
    fn from(v: u64) -> Number {
        Number::from_u64(v)
    }
}

impl From<u32> for Number {
    fn from(v: u32) -> Number {
        Number::from_i64(v.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    #[test]
    fn equality_is_numeric() {
        assert_eq!(Number::from_i64(5), p("5.0"));
        assert_eq!(Number::from_i64(5), Number::from_f64(5.0));
        assert_eq!(p("0.50"), Number::from_f64(0.5));
        assert_eq!(p("5e-1"), p(".5"));
        assert_eq!(p("-0"), Number::from_i64(0));
        assert_eq!(Number::from_f64(-0.0), Number::from_i64(0));
        assert_eq!(p("1e3"), Number::from_i64(1000));
        assert_eq!(p("+12"), Number::from_i64(12));
        assert_ne!(p("0.1"), Number::from_f64(0.1));
        assert_eq!(p("9223372036854775807"), Number::from_i64(i64::MAX));
        assert_eq!(p("-9223372036854775808"), Number::from_i64(i64::MIN));
        assert_eq!(p("18446744073709551615"), Number::from_u64(u64::MAX));
        assert_eq!(p("1e20"), Number::from_f64(1e20));
    }

    #[test]
    fn display_is_canonical() {
        for (input, shown) in [
            ("0", "0"),
            ("-0.0", "0"),
            ("5.000", "5"),
            ("0.1", "0.1"),
            ("-1.5e-30", "-0.0000000000000000000000000000015"),
            ("123456789012345678901234567890", "123456789012345678901234567890"),
            ("1e20", "100000000000000000000"),
            ("12.5e1", "125"),
            ("1e300", "1e+300"),
            ("-1.25e-300", "-1.25e-300"),
            ("inf", "+Inf"),
            ("-Infinity", "-Inf"),
            ("9223372036854775808", "9223372036854775808"),
            ("-9223372036854775809", "-9223372036854775809"),
        ] {
            assert_eq!(p(input).to_string(), shown, "{input}");
            assert_eq!(p(shown), p(input), "{shown} reparses");
        }
        assert_eq!(Number::from_f64(0.1).to_string(), "0.1000000000000000055511151231257827021181583404541015625");
        assert_eq!(Number::from_u64(u64::MAX).to_string(), "18446744073709551615");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-",
            "+",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "0x10",
            " 1",
            "1 ",
            "nan",
            "1_000",
            "--1",
            "1e99999999999999999999",
            "1e4611686018427387905",
        ] {
            assert!(Number::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integer_conversions() {
        assert_eq!(p("42").to_i64(), Some(42));
        assert_eq!(p("4.2e1").to_i64(), Some(42));
        assert_eq!(p("4.25e1").to_i64(), None);
        assert_eq!(Number::from_u64(u64::MAX).to_i64(), None);
        assert_eq!(Number::from_u64(u64::MAX).to_u64(), Some(u64::MAX));
        assert_eq!(p("18446744073709551616").to_u64(), None);
        assert_eq!(p("-1").to_u64(), None);
        assert_eq!(p("1e19").to_u64(), Some(10_000_000_000_000_000_000));
        assert!(p("1e40").is_integer());
        assert!(!p("0.5").is_integer());
        assert!(!p("inf").is_integer());
    }

    #[test]
    fn f64_conversions() {
        assert_eq!(p("0.1").to_f64(), 0.1);
        assert_eq!(p("1e400").to_f64(), f64::INFINITY);
        assert_eq!(p("-1e400").to_f64(), f64::NEG_INFINITY);
        assert_eq!(p("1e-400").to_f64(), 0.0);
        assert_eq!(p("1e-2000000000000000000").to_f64(), 0.0);
        assert_eq!(p("1e2000000000000000000").to_f64(), f64::INFINITY);
        assert_eq!(Number::from_i64(i64::MAX).to_f64(), 2f64.powi(63));
        for f in [0.5, -0.25, 1e-300, 5e-324, f64::MAX, f64::MIN_POSITIVE, 1e20, 2f64.powi(80), 0.1, 1.0 / 3.0] {
            let n = Number::from_f64(f);
            assert_eq!(n.to_f64(), f);
            assert_eq!(n.to_f64_exact(), Some(f), "{f}");
            assert_eq!(p(&n.to_string()), n);
        }
        assert_eq!(p("0.1").to_f64_exact(), None);
        assert_eq!(p("0.3").to_f64_exact(), None);
        assert_eq!(p("0.15").to_f64_exact(), None);
        assert_eq!(p("1e400").to_f64_exact(), None);
        assert_eq!(p("1e20").to_f64_exact(), Some(1e20));
        assert_eq!(p("123456789012345678901234567890").to_f64_exact(), None);
        assert_eq!(Number::from_i64(i64::MAX).to_f64_exact(), None);
        assert_eq!(Number::from_i64(1 << 62).to_f64_exact(), Some(2f64.powi(62)));
        assert_eq!(p("inf").to_f64_exact(), Some(f64::INFINITY));
        assert!(Number::try_from_f64(f64::NAN).is_none());
        assert_eq!(Number::from_f64(-(2f64.powi(63))).to_i64(), Some(i64::MIN));
        assert_eq!(Number::from_f64(2f64.powi(63)).to_u64(), Some(1 << 63));
    }

    #[test]
    fn ordering() {
        let sorted = [
            "-inf",
            "-1e30",
            "-9223372036854775809",
            "-9223372036854775808",
            "-1.5",
            "-1",
            "-0.001",
            "0",
            "1e-300",
            "0.1",
            "0.5",
            "1",
            "1.0000000000000000000001",
            "2",
            "9223372036854775807",
            "9223372036854775808",
            "1e300",
            "inf",
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(p(a).cmp(&p(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
    }
}
