//! Finding messages in captured frames, and building frames for captures.
//!
//! A frame carries a message either as the payload of a UDP datagram (over
//! IPv4 or IPv6, over Ethernet, raw IP, BSD loopback or Linux cooked
//! capture) to or from one of the watched ports, or as the whole frame of
//! link type `USER0` (DLT 147). Every offset is checked: a short or
//! inconsistent header means "no message here", never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::vec::Vec;

use ciot_e2e::wire::MAX_MESSAGE_LEN;

/// Link-layer types (LINKTYPE_* values of pcap and pcapng) this module reads.
pub mod link {
    /// BSD loopback: a 4-octet address family in host order.
    pub const NULL: u32 = 0;
    /// Ethernet II (with up to two VLAN tags).
    pub const ETHERNET: u32 = 1;
    /// Raw IPv4 or IPv6.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: a 4-octet address family, big endian.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: u32 = 113;
    /// User-defined link type 0: the whole frame is one message.
    pub const USER0: u32 = 147;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;
}

/// A message found in a frame, with the addresses it travelled between
/// (none for a `USER0` frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// Source address and port.
    pub src: Option<SocketAddr>,
    /// Destination address and port.
    pub dst: Option<SocketAddr>,
    /// The message's octets.
    pub payload: &'a [u8],
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Finds the message in a frame of link type `link`: a UDP payload when
/// either port is in `ports`, or the whole frame for `USER0`. `None` when
/// the frame carries no message (another protocol, another port, an IP
/// fragment, a header that does not fit).
#[must_use]
pub fn find_message<'a>(link: u32, frame: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    match link {
        link::USER0 => Some(Found {
            src: None,
            dst: None,
            payload: frame,
        }),
        link::ETHERNET => {
            let mut at = 12;
            let mut ty = be16(frame, at)?;
            for _ in 0..2 {
                if ty == ETHERTYPE_VLAN || ty == ETHERTYPE_QINQ {
                    at += 4;
                    ty = be16(frame, at)?;
                }
            }
            ethertype(ty, frame.get(at + 2..)?, ports)
        }
        link::LINUX_SLL => ethertype(be16(frame, 14)?, frame.get(16..)?, ports),
        link::LINUX_SLL2 => ethertype(be16(frame, 0)?, frame.get(20..)?, ports),
        link::RAW | link::IPV4 | link::IPV6 => ip(frame, ports),
        link::NULL | link::LOOP => {
            // The family is in the capturing host's order; IPv4 is 2 and IPv6
            // 24, 28 or 30 everywhere, so peek at the IP version instead.
            ip(frame.get(4..)?, ports)
        }
        _ => None,
    }
}

fn ethertype<'a>(ty: u16, rest: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    match ty {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => ip(rest, ports),
        _ => None,
    }
}

fn ip<'a>(packet: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    match packet.first()? >> 4 {
        4 => ipv4(packet, ports),
        6 => ipv6(packet, ports),
        _ => None,
    }
}

fn ipv4<'a>(p: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    if ihl < 20 || *p.get(9)? != IPPROTO_UDP {
        return None;
    }
    let frag = be16(p, 6)?;
    if frag & 0x3fff != 0 {
        return None; // a fragment: the datagram is not whole here
    }
    let total = usize::from(be16(p, 2)?).min(p.len());
    let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
    let seg = p.get(ihl..total)?;
    udp(
        IpAddr::V4(Ipv4Addr::from(src)),
        IpAddr::V4(Ipv4Addr::from(dst)),
        seg,
        ports,
    )
}

fn ipv6<'a>(p: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    let payload_len = usize::from(be16(p, 4)?);
    let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
    let end = 40usize.saturating_add(payload_len).min(p.len());
    let mut next = *p.get(6)?;
    let mut at = 40;
    // Hop-by-hop, routing and destination options may precede UDP.
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let len = (usize::from(*p.get(at + 1)?) + 1) * 8;
                next = *p.get(at)?;
                at += len;
            }
            _ => break,
        }
    }
    if next != IPPROTO_UDP {
        return None;
    }
    let seg = p.get(at..end)?;
    udp(
        IpAddr::V6(Ipv6Addr::from(src)),
        IpAddr::V6(Ipv6Addr::from(dst)),
        seg,
        ports,
    )
}

fn udp<'a>(src: IpAddr, dst: IpAddr, seg: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    let sport = be16(seg, 0)?;
    let dport = be16(seg, 2)?;
    let len = usize::from(be16(seg, 4)?);
    if len < 8 || !(ports.contains(&sport) || ports.contains(&dport)) {
        return None;
    }
    let payload = seg.get(8..len.min(seg.len()))?;
    Some(Found {
        src: Some(SocketAddr::new(src, sport)),
        dst: Some(SocketAddr::new(dst, dport)),
        payload,
    })
}

/// Octets of the Ethernet, IPv4 and UDP headers [`ethernet_ipv4_udp`] writes.
pub const ETHERNET_IPV4_UDP_HEADER_LEN: usize = 14 + 20 + 8;

/// Builds an Ethernet II / IPv4 / UDP frame carrying `payload` into `out`
/// (cleared first): locally administered MAC addresses derived from the IP
/// addresses, IPv4 header checksum set, UDP checksum 0 (none). `ip_id` is
/// the IPv4 identification. Returns `None` (and writes nothing) when the
/// payload does not fit one UDP datagram over IPv4.
pub fn ethernet_ipv4_udp(
    out: &mut Vec<u8>,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ip_id: u16,
    payload: &[u8],
) -> Option<()> {
    if payload.len() > MAX_MESSAGE_LEN {
        return None;
    }
    let udp_len = u16::try_from(8 + payload.len()).ok()?;
    let ip_len = u16::try_from(20 + 8 + payload.len()).ok()?;
    out.clear();
    out.reserve(ETHERNET_IPV4_UDP_HEADER_LEN + payload.len());
    let mac = |ip: &Ipv4Addr| {
        let o = ip.octets();
        [0x02, 0x00, o[0], o[1], o[2], o[3]]
    };
    out.extend_from_slice(&mac(dst.ip()));
    out.extend_from_slice(&mac(src.ip()));
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip_start = out.len();
    out.extend_from_slice(&[0x45, 0x00]);
    out.extend_from_slice(&ip_len.to_be_bytes());
    out.extend_from_slice(&ip_id.to_be_bytes());
    out.extend_from_slice(&[0x40, 0x00, 64, IPPROTO_UDP, 0, 0]); // DF, TTL 64
    out.extend_from_slice(&src.ip().octets());
    out.extend_from_slice(&dst.ip().octets());
    let sum = out[ip_start..].chunks(2).fold(0u32, |acc, w| {
        acc + u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))
    });
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    out[ip_start + 10..ip_start + 12].copy_from_slice(&checksum.to_be_bytes());
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_frame_is_found_again() {
        let mut f = Vec::new();
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 50000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 33863);
        ethernet_ipv4_udp(&mut f, src, dst, 1, b"hello").unwrap();
        let found = find_message(link::ETHERNET, &f, &[33863]).unwrap();
        assert_eq!(found.payload, b"hello");
        assert_eq!(found.src, Some(SocketAddr::V4(src)));
        assert!(find_message(link::ETHERNET, &f, &[1]).is_none());
        for cut in 0..f.len() {
            let _ = find_message(link::ETHERNET, &f[..cut], &[33863]);
        }
    }
}
