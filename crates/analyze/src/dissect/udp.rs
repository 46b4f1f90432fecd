//! Finding messages in captured frames, and building frames for captures.
//!
//! A frame carries a message either as the payload of a UDP datagram (over
//! IPv4 or IPv6, over Ethernet, raw IP, BSD loopback or Linux cooked
//! capture) to or from one of the watched ports, or as the whole frame of
//! link type `USER0` (DLT 147). Ethernet, VLAN, IP and UDP headers are
//! etherparse's slices, IP and UDP in its lax mode, so a frame cut short by
//! the snapshot length still yields the part of the message it holds; a
//! header that does not fit or contradicts itself means "no message here",
//! never a panic.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::vec::Vec;

use ciot_e2e::wire::MAX_MESSAGE_LEN;
use etherparse::{
    EtherPayloadSlice, EtherType, Ethernet2Header, Ethernet2Slice, IpNumber, Ipv4Header,
    LaxIpSlice, LenSource, SingleVlanSlice, UdpHeader, UdpSlice,
};

/// Link-layer types (LINKTYPE_* values of pcap and pcapng) this module reads.
pub mod link {
    /// BSD loopback: a 4-octet address family in host order.
    pub const NULL: u32 = 0;
    /// Ethernet II (with up to three VLAN tags).
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

/// Finds the message in a frame of link type `link`: a UDP payload when
/// either port is in `ports`, or the whole frame for `USER0`. `None` when
/// the frame carries no message (another protocol, another port, an IP
/// fragment, a header that does not fit).
#[must_use]
pub fn find_message<'a>(link: u32, frame: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    let ip = match link {
        link::USER0 => {
            return Some(Found {
                src: None,
                dst: None,
                payload: frame,
            });
        }
        link::ETHERNET => {
            let ethernet = Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
            ip_in(ethernet.payload())?
        }
        // etherparse reads Linux cooked v1 only for a few ARPHRD types and
        // refuses loopback (772) and tun (0xfffe) devices, the ones `any`
        // captures of local traffic show; it has no v2 and no BSD loopback.
        // These link headers are fixed-size, so they are skipped by offset
        // (SLL: protocol at 14, header 16 octets; SLL2: protocol at 0,
        // header 20 octets) and the rest is etherparse's again.
        link::LINUX_SLL => ip_in(ether_payload(frame, 14, 16)?)?,
        link::LINUX_SLL2 => ip_in(ether_payload(frame, 0, 20)?)?,
        link::RAW | link::IPV4 | link::IPV6 => frame,
        // The family is in the capturing host's order; IPv4 is 2 and IPv6
        // 24, 28 or 30 everywhere, so the IP version nibble decides instead.
        link::NULL | link::LOOP => frame.get(4..)?,
        _ => return None,
    };
    datagram(ip, ports)
}

/// The payload after a cooked-capture header of `len` octets whose
/// protocol (an EtherType) is at `at`.
fn ether_payload(frame: &[u8], at: usize, len: usize) -> Option<EtherPayloadSlice<'_>> {
    let ty: [u8; 2] = frame.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(EtherPayloadSlice {
        ether_type: EtherType(u16::from_be_bytes(ty)),
        len_source: LenSource::Slice,
        payload: frame.get(len..)?,
    })
}

/// VLAN tags (802.1Q, 802.1ad, and the older 0x9100) read before the IP
/// packet, as many as etherparse's own packet slicer reads.
const MAX_VLAN_TAGS: usize = 3;

/// The IPv4 or IPv6 packet of an Ethernet payload, under up to
/// [`MAX_VLAN_TAGS`] VLAN tags.
///
/// etherparse's `LaxSlicedPacket` walks the same headers, but it fills a
/// record of every layer (with room for errors and three link extensions):
/// 80–100 ns per frame of `gen-pcap` traffic, against 15–20 for the
/// hand-written parser this replaced and 25–30 for this walk over
/// etherparse's per-header slices. The loop over VLAN tags is all that is
/// left to write.
fn ip_in(mut ether: EtherPayloadSlice<'_>) -> Option<&[u8]> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ether.ether_type {
            EtherType::IPV4 | EtherType::IPV6 => return Some(ether.payload),
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                ether = SingleVlanSlice::from_slice(ether.payload).ok()?.payload();
            }
            _ => return None,
        }
    }
    None
}

/// The UDP payload of an IP packet, when it is a whole (unfragmented)
/// datagram to or from a watched port.
fn datagram<'a>(packet: &'a [u8], ports: &[u16]) -> Option<Found<'a>> {
    let (ip, ext_error) = LaxIpSlice::from_slice(packet).ok()?;
    // An extension header that does not parse leaves its own number as the
    // payload's, never UDP; refused here all the same, as etherparse's own
    // slicer stops there.
    if ext_error.is_some() {
        return None;
    }
    // Lax slicing falls back to the captured length when a length field is
    // below its own header (an IPv4 total length shorter than the header,
    // an IPv6 payload length of 0, a UDP length under 8). Such a header is
    // damaged, and no message is read from it rather than a guess.
    let (src, dst) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            if usize::from(h.total_len()) < h.slice().len() {
                return None;
            }
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            if h.payload_length() == 0 {
                return None;
            }
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
            )
        }
    };
    let payload = ip.payload();
    if payload.fragmented || payload.ip_number != IpNumber::UDP {
        return None;
    }
    let udp = UdpSlice::from_slice_lax(payload.payload).ok()?;
    if usize::from(udp.length()) < UdpHeader::LEN {
        return None;
    }
    let (sport, dport) = (udp.source_port(), udp.destination_port());
    if !(ports.contains(&sport) || ports.contains(&dport)) {
        return None;
    }
    Some(Found {
        src: Some(SocketAddr::new(src, sport)),
        dst: Some(SocketAddr::new(dst, dport)),
        payload: udp.payload(),
    })
}

/// Octets of the Ethernet, IPv4 and UDP headers [`ethernet_ipv4_udp`] writes.
pub const ETHERNET_IPV4_UDP_HEADER_LEN: usize =
    Ethernet2Header::LEN + Ipv4Header::MIN_LEN + UdpHeader::LEN;

/// Builds an Ethernet II / IPv4 / UDP frame carrying `payload` into `out`
/// (cleared first): locally administered MAC addresses derived from the IP
/// addresses, IPv4 header checksum set, UDP checksum 0 (none). `ip_id` is
/// the IPv4 identification. Returns `None` (and writes nothing) when the
/// payload does not fit one UDP datagram over IPv4.
///
/// The headers are etherparse's, written one by one: its `PacketBuilder`
/// always fills in the UDP checksum, which would change every frame of the
/// captures `gen-pcap` and the demo have written so far.
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
    let udp = UdpHeader {
        source_port: src.port(),
        destination_port: dst.port(),
        length: u16::try_from(UdpHeader::LEN + payload.len()).ok()?,
        checksum: 0,
    };
    // DF set, TTL 64, no options.
    let mut ip = Ipv4Header::new(
        udp.length,
        64,
        IpNumber::UDP,
        src.ip().octets(),
        dst.ip().octets(),
    )
    .ok()?;
    ip.identification = ip_id;
    ip.header_checksum = ip.calc_header_checksum();
    let mac = |addr: SocketAddrV4| {
        let o = addr.ip().octets();
        [0x02, 0x00, o[0], o[1], o[2], o[3]]
    };
    let eth = Ethernet2Header {
        source: mac(src),
        destination: mac(dst),
        ether_type: EtherType::IPV4,
    };
    out.clear();
    out.reserve(ETHERNET_IPV4_UDP_HEADER_LEN + payload.len());
    out.extend_from_slice(&eth.to_bytes());
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(&udp.to_bytes());
    out.extend_from_slice(payload);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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
