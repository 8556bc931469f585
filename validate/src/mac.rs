//! MAC addresses of network interfaces.

use crate::{invalid, Invalid, Problem};

const KIND: &str = "MAC address";

/// A NIC's MAC address, as libvirt writes it: six lowercase hex pairs joined by `:`, and
/// unicast (the first octet even). A multicast address cannot be an interface's own, and a DHCP
/// host entry names an interface, so both refuse one. Returns the six octets.
pub fn mac_address(s: &str) -> Result<[u8; 6], Invalid> {
    let parts: Vec<&str> = s.split(':').collect();
    let well_formed =
        parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(invalid(s, KIND, Problem::Other("write it like \"52:54:00:12:34:56\"".into())));
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        let lower = s.to_lowercase();
        return Err(invalid(
            s,
            KIND,
            Problem::Other(format!("write it in lowercase, as libvirt reports it: {lower:?}")),
        ));
    }
    let mut octets = [0u8; 6];
    for (octet, part) in octets.iter_mut().zip(&parts) {
        *octet = u8::from_str_radix(part, 16).expect("two hex digits");
    }
    if octets[0] & 1 == 1 {
        return Err(invalid(
            s,
            KIND,
            Problem::Other("it is a multicast address; an interface needs a unicast one (an even first octet)".into()),
        ));
    }
    Ok(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let table: &[(&str, bool)] = &[
            ("52:54:00:12:34:56", true),
            ("02:00:00:00:00:01", true),
            ("fe:ff:ff:ff:ff:ff", true),
            ("52:54:00:AB:CD:EF", false),
            ("01:00:5e:00:00:01", false),
            ("ff:ff:ff:ff:ff:ff", false),
            ("52:54:00:12:34", false),
            ("52-54-00-12-34-56", false),
            ("52:54:00:12:34:5g", false),
            ("5254.0012.3456", false),
            ("", false),
        ];
        for (mac, ok) in table {
            assert_eq!(mac_address(mac).is_ok(), *ok, "{mac}: {:?}", mac_address(mac));
        }
        assert_eq!(mac_address("52:54:00:12:34:56").unwrap(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let e = mac_address("52:54:00:AB:CD:EF").unwrap_err().to_string();
        assert!(e.contains("\"52:54:00:ab:cd:ef\""), "{e}");
    }
}
