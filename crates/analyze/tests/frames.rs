//! Finding messages in captured frames: every link type, VLAN tags, IPv6
//! extension headers, fragments, damaged length fields and frames cut short
//! by the snapshot length. The frames are written out octet by octet here,
//! not with the library that slices them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use ciot_e2e_analyze::dissect::udp::{
    ETHERNET_IPV4_UDP_HEADER_LEN, Found, ethernet_ipv4_udp, find_message, link,
};

const PORT: u16 = 33863;
const MSG: &[u8] = &[0x03, 0x03, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x42];

const V4_SRC: [u8; 4] = [10, 0, 0, 1];
const V4_DST: [u8; 4] = [10, 0, 0, 2];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn udp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&50000u16.to_be_bytes());
    v.extend_from_slice(&PORT.to_be_bytes());
    v.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// IPv4 with `options` words of options, carrying `seg` as `protocol`;
/// `frag` is the flags/fragment-offset field.
fn ipv4_with(protocol: u8, frag: u16, options: usize, seg: &[u8]) -> Vec<u8> {
    let ihl = 5 + options;
    let mut v = vec![0x40 | u8::try_from(ihl).unwrap(), 0];
    v.extend_from_slice(&u16::try_from(ihl * 4 + seg.len()).unwrap().to_be_bytes());
    v.extend_from_slice(&[0x12, 0x34]);
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, protocol, 0, 0]);
    v.extend_from_slice(&V4_SRC);
    v.extend_from_slice(&V4_DST);
    // Options: NOPs, then end of list.
    v.extend(std::iter::repeat_n(1u8, options * 4));
    if options > 0 {
        *v.last_mut().unwrap() = 0;
    }
    v.extend_from_slice(seg);
    v
}

fn ipv4(seg: &[u8]) -> Vec<u8> {
    ipv4_with(17, 0x4000, 0, seg)
}

/// IPv6 with extension headers of the given types, each 8 octets, then
/// `seg` as UDP. A fragment header (44) gets `frag` as its offset/M field.
fn ipv6_with(exts: &[u8], frag: u16, seg: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, _) in exts.iter().enumerate() {
        let next = exts.get(i + 1).copied().unwrap_or(17);
        if exts[i] == 44 {
            body.extend_from_slice(&[next, 0]);
            body.extend_from_slice(&frag.to_be_bytes());
            body.extend_from_slice(&[0, 0, 0, 7]);
        } else {
            // Length 0 (8 octets): next header, length, one PadN option.
            body.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
    }
    body.extend_from_slice(seg);
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    v.push(exts.first().copied().unwrap_or(17));
    v.push(64);
    v.extend_from_slice(&V6_SRC);
    v.extend_from_slice(&V6_DST);
    v.extend_from_slice(&body);
    v
}

fn ipv6(seg: &[u8]) -> Vec<u8> {
    ipv6_with(&[], 0, seg)
}

/// Ethernet II with the given tag types (each tag: type, then VID 5), then
/// `ether_type` and `packet`.
fn ethernet(tags: &[u16], ether_type: u16, packet: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for t in tags {
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&[0x00, 0x05]);
    }
    v.extend_from_slice(&ether_type.to_be_bytes());
    v.extend_from_slice(packet);
    v
}

fn v4_addrs() -> (Option<SocketAddr>, Option<SocketAddr>) {
    (
        Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(V4_SRC)), 50000)),
        Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(V4_DST)), PORT)),
    )
}

fn v6_addrs() -> (Option<SocketAddr>, Option<SocketAddr>) {
    (
        Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(V6_SRC)), 50000)),
        Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(V6_DST)), PORT)),
    )
}

fn payload(link: u32, frame: &[u8]) -> Option<&[u8]> {
    find_message(link, frame, &[PORT]).map(|f| f.payload)
}

#[track_caller]
fn assert_found_v4(link: u32, frame: &[u8]) {
    let found = find_message(link, frame, &[PORT]).expect("a message");
    assert_eq!((found.src, found.dst), v4_addrs());
    assert_eq!(found.payload, MSG);
}

#[track_caller]
fn assert_found_v6(link: u32, frame: &[u8]) {
    let found = find_message(link, frame, &[PORT]).expect("a message");
    assert_eq!((found.src, found.dst), v6_addrs());
    assert_eq!(found.payload, MSG);
}

#[test]
fn ethernet_ipv4_and_ipv6_are_found_with_their_addresses() {
    assert_found_v4(link::ETHERNET, &ethernet(&[], 0x0800, &ipv4(&udp(MSG))));
    assert_found_v6(link::ETHERNET, &ethernet(&[], 0x86dd, &ipv6(&udp(MSG))));
}

#[test]
fn only_watched_ports_and_udp_are_read() {
    let frame = ethernet(&[], 0x0800, &ipv4(&udp(MSG)));
    assert!(find_message(link::ETHERNET, &frame, &[1, 2]).is_none());
    // Either port counts: the source port 50000 as well.
    assert!(find_message(link::ETHERNET, &frame, &[50000]).is_some());
    // TCP (6) with the same octets after the IP header.
    let tcp = ethernet(&[], 0x0800, &ipv4_with(6, 0x4000, 0, &udp(MSG)));
    assert!(payload(link::ETHERNET, &tcp).is_none());
    // ARP, not IP.
    let arp = ethernet(&[], 0x0806, &ipv4(&udp(MSG)));
    assert!(payload(link::ETHERNET, &arp).is_none());
    // A link type nobody reads.
    assert!(payload(9999, &frame).is_none());
}

#[test]
fn vlan_tags_are_skipped_up_to_three() {
    let ip = ipv4(&udp(MSG));
    for tags in [
        &[0x8100][..],
        &[0x88a8, 0x8100],
        &[0x9100],
        &[0x88a8, 0x8100, 0x8100],
    ] {
        assert_found_v4(link::ETHERNET, &ethernet(tags, 0x0800, &ip));
    }
    let v6 = ethernet(&[0x8100], 0x86dd, &ipv6(&udp(MSG)));
    assert_found_v6(link::ETHERNET, &v6);
    // A fourth tag is past what is read.
    let four = ethernet(&[0x88a8, 0x8100, 0x8100, 0x8100], 0x0800, &ip);
    assert!(payload(link::ETHERNET, &four).is_none());
    // A tag cut in half.
    let tagged = ethernet(&[0x8100], 0x0800, &ip);
    assert!(payload(link::ETHERNET, &tagged[..16]).is_none());
}

#[test]
fn ipv4_options_are_skipped() {
    for words in [1, 3, 10] {
        let frame = ethernet(&[], 0x0800, &ipv4_with(17, 0x4000, words, &udp(MSG)));
        assert_found_v4(link::ETHERNET, &frame);
    }
}

#[test]
fn ipv4_fragments_are_not_read() {
    // More fragments set; an offset of 8 octets; both.
    for frag in [0x2000, 0x0001, 0x2001] {
        let frame = ethernet(&[], 0x0800, &ipv4_with(17, frag, 0, &udp(MSG)));
        assert!(payload(link::ETHERNET, &frame).is_none(), "{frag:#06x}");
    }
    // Don't-fragment alone, and no flags at all: whole datagrams.
    for frag in [0x4000, 0x0000] {
        let frame = ethernet(&[], 0x0800, &ipv4_with(17, frag, 0, &udp(MSG)));
        assert_found_v4(link::ETHERNET, &frame);
    }
}

#[test]
fn ipv4_authentication_header_before_udp_is_skipped() {
    // AH (RFC 4302): next header UDP, length 4 (24 octets), SPI, sequence,
    // a 12-octet ICV.
    let mut ah = vec![17, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    ah.extend_from_slice(&[0xaa; 12]);
    ah.extend_from_slice(&udp(MSG));
    assert_found_v4(
        link::ETHERNET,
        &ethernet(&[], 0x0800, &ipv4_with(51, 0x4000, 0, &ah)),
    );
}

#[test]
fn ipv6_extension_headers_before_udp_are_skipped() {
    for exts in [&[0][..], &[60], &[43], &[0, 60, 43, 60]] {
        let frame = ethernet(&[], 0x86dd, &ipv6_with(exts, 0, &udp(MSG)));
        assert_found_v6(link::ETHERNET, &frame);
    }
}

#[test]
fn ipv6_hop_by_hop_after_another_extension_is_refused() {
    // RFC 8200 4.1: hop-by-hop options only right after the IPv6 header.
    let frame = ethernet(&[], 0x86dd, &ipv6_with(&[60, 0], 0, &udp(MSG)));
    assert!(payload(link::ETHERNET, &frame).is_none());
}

#[test]
fn ipv6_fragments_are_not_read_but_atomic_fragments_are() {
    // Offset 0 and M clear: the whole datagram in one fragment (RFC 6946).
    let atomic = ethernet(&[], 0x86dd, &ipv6_with(&[44], 0x0000, &udp(MSG)));
    assert_found_v6(link::ETHERNET, &atomic);
    // M set; offset 8 octets.
    for frag in [0x0001, 0x0008] {
        let frame = ethernet(&[], 0x86dd, &ipv6_with(&[44], frag, &udp(MSG)));
        assert!(payload(link::ETHERNET, &frame).is_none(), "{frag:#06x}");
    }
}

#[test]
fn every_cut_of_a_frame_gives_no_message_or_the_part_captured() {
    for (name, frame, payload_at) in [
        ("ipv4", ethernet(&[], 0x0800, &ipv4(&udp(MSG))), 14 + 20 + 8),
        (
            "vlan",
            ethernet(&[0x8100], 0x0800, &ipv4(&udp(MSG))),
            18 + 20 + 8,
        ),
        ("ipv6", ethernet(&[], 0x86dd, &ipv6(&udp(MSG))), 14 + 40 + 8),
        (
            "ipv6+exts",
            ethernet(&[], 0x86dd, &ipv6_with(&[0, 60], 0, &udp(MSG))),
            14 + 40 + 16 + 8,
        ),
    ] {
        assert_eq!(frame.len(), payload_at + MSG.len(), "{name}");
        for cut in 0..=frame.len() {
            let got = payload(link::ETHERNET, &frame[..cut]);
            if cut < payload_at {
                // A header that does not fit: no message.
                assert_eq!(got, None, "{name} cut at {cut}");
            } else {
                // Cut by the snapshot length inside the message: the part
                // there is, for the dissector to call truncated.
                assert_eq!(got, Some(&MSG[..cut - payload_at]), "{name} cut at {cut}");
            }
        }
    }
}

#[test]
fn length_fields_below_their_header_mean_no_message() {
    let frame = ethernet(&[], 0x0800, &ipv4(&udp(MSG)));
    // IPv4 total length 19, under the 20-octet header (and 0, as written by
    // segmentation offload).
    for total in [19u16, 0] {
        let mut f = frame.clone();
        f[16..18].copy_from_slice(&total.to_be_bytes());
        assert!(
            payload(link::ETHERNET, &f).is_none(),
            "total length {total}"
        );
    }
    // UDP length 7 and 0, under the 8-octet header.
    for len in [7u16, 0] {
        let mut f = frame.clone();
        f[38..40].copy_from_slice(&len.to_be_bytes());
        assert!(payload(link::ETHERNET, &f).is_none(), "udp length {len}");
    }
    // IPv6 payload length 0 (a jumbogram without its option).
    let mut f = ethernet(&[], 0x86dd, &ipv6(&udp(MSG)));
    f[18..20].fill(0);
    assert!(payload(link::ETHERNET, &f).is_none());
    // IPv4 header length under 5 words.
    let mut f = frame.clone();
    f[14] = 0x44;
    assert!(payload(link::ETHERNET, &f).is_none());
}

#[test]
fn length_fields_bound_the_message_within_the_frame() {
    // Ethernet padding after a short datagram: the IP total length ends it.
    let mut padded = ethernet(&[], 0x0800, &ipv4(&udp(MSG)));
    padded.extend_from_slice(&[0; 12]);
    assert_found_v4(link::ETHERNET, &padded);
    let mut padded6 = ethernet(&[], 0x86dd, &ipv6(&udp(MSG)));
    padded6.extend_from_slice(&[0; 12]);
    assert_found_v6(link::ETHERNET, &padded6);
    // A UDP length shorter than the IP payload ends the message.
    let mut short = ethernet(&[], 0x0800, &ipv4(&udp(MSG)));
    short[38..40].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(payload(link::ETHERNET, &short), Some(&MSG[..4]));
    // IP and UDP lengths longer than what was captured: what is there.
    let mut long = ethernet(&[], 0x0800, &ipv4(&udp(MSG)));
    long[16..18].copy_from_slice(&1000u16.to_be_bytes());
    long[38..40].copy_from_slice(&980u16.to_be_bytes());
    assert_eq!(payload(link::ETHERNET, &long), Some(MSG));
}

#[test]
fn cooked_loopback_and_raw_links_are_read() {
    let v4 = ipv4(&udp(MSG));
    let v6 = ipv6(&udp(MSG));
    // Linux cooked v1: packet type, ARPHRD type, address length, address
    // (8), protocol. Ethernet (1), loopback (772) and tun (0xfffe) devices.
    for hatype in [1u16, 772, 0xfffe] {
        let mut f = vec![0, 0];
        f.extend_from_slice(&hatype.to_be_bytes());
        f.extend_from_slice(&[0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00]);
        f.extend_from_slice(&v4);
        assert_found_v4(link::LINUX_SLL, &f);
    }
    // Linux cooked v2: protocol, reserved, interface index, ARPHRD type,
    // packet type, address length, address (8).
    let mut f = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0, 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(&v6);
    assert_found_v6(link::LINUX_SLL2, &f);
    // BSD loopback: the address family in either byte order; the IP
    // version decides.
    for family in [[2, 0, 0, 0], [0, 0, 0, 2], [30, 0, 0, 0]] {
        let mut f = family.to_vec();
        f.extend_from_slice(if family.contains(&30) { &v6 } else { &v4 });
        let found = find_message(link::NULL, &f, &[PORT]).expect("a message");
        assert_eq!(found.payload, MSG);
        assert_eq!(
            find_message(link::LOOP, &f, &[PORT]).map(|f| f.payload),
            Some(MSG)
        );
    }
    for l in [link::RAW, link::IPV4, link::IPV6] {
        assert_found_v4(l, &v4);
        assert_found_v6(l, &v6);
    }
    // Cooked headers cut short, a non-IP protocol in them.
    assert!(payload(link::LINUX_SLL, &[0; 15]).is_none());
    assert!(payload(link::LINUX_SLL2, &[0x08, 0x00, 0, 0]).is_none());
    let mut arp = vec![0x08, 0x06];
    arp.extend_from_slice(&[0; 18]);
    arp.extend_from_slice(&v4);
    assert!(payload(link::LINUX_SLL2, &arp).is_none());
    assert!(payload(link::NULL, &[2, 0, 0]).is_none());
    assert!(payload(link::RAW, &[]).is_none());
}

#[test]
fn user0_frames_are_whole_messages_without_addresses() {
    assert_eq!(
        find_message(link::USER0, MSG, &[]),
        Some(Found {
            src: None,
            dst: None,
            payload: MSG,
        })
    );
    assert_eq!(payload(link::USER0, &[]), Some(&[][..]));
}

/// RFC 1071: the ones' complement sum of a header with its checksum in
/// place is 0xffff.
fn ones_complement_sum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum).unwrap()
}

#[test]
fn the_built_frame_has_the_documented_octets() {
    let mut f = Vec::new();
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 50000);
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), PORT);
    ethernet_ipv4_udp(&mut f, src, dst, 0x0102, MSG).unwrap();
    assert_eq!(f.len(), ETHERNET_IPV4_UDP_HEADER_LEN + MSG.len());
    #[rustfmt::skip]
    let headers: [u8; 42] = [
        // Ethernet: destination and source 02:00:<IPv4 address>, IPv4.
        0x02, 0x00, 10, 1, 0, 1,  0x02, 0x00, 10, 0, 0, 1,  0x08, 0x00,
        // IPv4: version 4, IHL 5, total length 37, identification 0x0102,
        // DF, TTL 64, UDP, header checksum, addresses.
        0x45, 0x00, 0x00, 37,  0x01, 0x02, 0x40, 0x00,  64, 17, 0x25, 0xc4,
        10, 0, 0, 1,  10, 1, 0, 1,
        // UDP: ports, length 17, checksum 0 (none).
        0xc3, 0x50, 0x84, 0x47, 0x00, 17, 0x00, 0x00,
    ];
    assert_eq!(&f[..42], &headers[..]);
    assert_eq!(&f[42..], MSG);
    assert_eq!(ones_complement_sum(&f[14..34]), 0xffff);
    assert_eq!(
        find_message(link::ETHERNET, &f, &[PORT]).unwrap().payload,
        MSG
    );
}

#[test]
fn a_payload_over_one_datagram_is_refused_and_nothing_written() {
    let mut f = vec![0xa5; 3];
    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
    let big = vec![0; ciot_e2e::wire::MAX_MESSAGE_LEN + 1];
    assert_eq!(ethernet_ipv4_udp(&mut f, a, a, 1, &big), None);
    assert_eq!(f, [0xa5; 3]);
}
