//! Reading pcap and pcapng captures frame by frame, and writing captures of
//! messages (for the demo, `gen-pcap` and tests). Uses the `pcap-file`
//! crate for both formats; the Ethernet/IPv4/UDP frames inside come from
//! [`udp::ethernet_ipv4_udp`].
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use std::time::Duration;
//! use ciot_e2e_analyze::dissect::pcap::{CaptureReader, UdpPcapWriter};
//!
//! let mut w = UdpPcapWriter::new(Vec::new())?;
//! let ue = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 50000);
//! let eese = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 33863);
//! w.write(Duration::from_secs(1), ue, eese, &[0x01, 0x03, 0x00, 0x00])?;
//! let file = w.into_inner()?;
//!
//! let mut r = CaptureReader::new(file.as_slice())?;
//! let frame = r.next_frame().expect("one frame")?;
//! assert_eq!((frame.number, frame.link), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddrV4;
use std::string::{String, ToString};
use std::time::Duration;
use std::vec;
use std::vec::Vec;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use pcap_file::{DataLink, PcapError, TsResolution};

use super::udp::{self, link};

/// Snapshot length written into captures: room for the largest message
/// with its Ethernet, IP and UDP headers.
pub const SNAPLEN: u32 = 262_144;

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file does not start with a pcap or pcapng magic number.
    #[error("not a pcap or pcapng capture (unknown magic number {0:02x?})")]
    NotACapture([u8; 4]),
    /// The file ends in the middle of a header, block or frame.
    #[error("truncated capture: the file ends inside frame {frame} or the block before it")]
    Truncated {
        /// Number of the frame that was being read (1-based).
        frame: u64,
    },
    /// A header or block holds values the format does not allow.
    #[error("corrupt capture near frame {frame}: {reason}")]
    Corrupt {
        /// Number of the frame that was being read (1-based).
        frame: u64,
        /// What the reader found.
        reason: String,
    },
    /// Reading failed.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// One captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Frame number, from 1, counting every packet of the capture.
    pub number: u64,
    /// Time since the Unix epoch (or since the start, for synthetic
    /// captures).
    pub time: Duration,
    /// Link type (LINKTYPE_* value, see [`udp::link`]).
    pub link: u32,
    /// The captured octets.
    pub data: &'a [u8],
}

enum Inner<R: Read> {
    Pcap(PcapReader<R>),
    Ng(PcapNgReader<R>),
}

/// Reads pcap or pcapng, whichever the file is, one frame at a time.
pub struct CaptureReader<R: Read> {
    inner: Inner<BufReader<R>>,
    number: u64,
    /// pcapng: (link type, if_tsresol) of each interface of the section.
    interfaces: Vec<(u32, u8)>,
    buf: Vec<u8>,
}

impl<R: Read> core::fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CaptureReader({}, frame {})", self.format(), self.number)
    }
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl<R: Read> CaptureReader<R> {
    /// Opens a capture, telling pcap from pcapng by its magic number.
    ///
    /// # Errors
    /// [`CaptureError::NotACapture`] for anything else, [`CaptureError::Truncated`]
    /// or [`CaptureError::Corrupt`] for a bad file header.
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        // pcap-file has one reader per format and none that tells them
        // apart, so the magic number is peeked here (not consumed) and
        // picks the reader.
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut magic = [0u8; 4];
        let head = reader.fill_buf()?;
        if head.len() >= 4 {
            magic.copy_from_slice(&head[..4]);
        } else {
            magic[..head.len()].copy_from_slice(head);
            if head.is_empty() {
                return Err(CaptureError::NotACapture(magic));
            }
        }
        let inner = if PCAP_MAGICS.contains(&magic) {
            Inner::Pcap(PcapReader::new(reader).map_err(|e| map_error(e, 0))?)
        } else if magic == PCAPNG_MAGIC {
            Inner::Ng(PcapNgReader::new(reader).map_err(|e| map_error(e, 0))?)
        } else {
            return Err(CaptureError::NotACapture(magic));
        };
        Ok(CaptureReader {
            inner,
            number: 0,
            interfaces: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// `pcap` or `pcapng`.
    #[must_use]
    pub fn format(&self) -> &'static str {
        match self.inner {
            Inner::Pcap(_) => "pcap",
            Inner::Ng(_) => "pcapng",
        }
    }

    /// The next frame; `None` at the end of the capture.
    ///
    /// # Errors
    /// [`CaptureError::Truncated`] when the file ends inside a frame,
    /// [`CaptureError::Corrupt`] for a malformed block.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>> {
        let number = self.number + 1;
        match &mut self.inner {
            Inner::Pcap(r) => {
                let link = u32::from(r.header().datalink);
                let packet = match r.next_packet()? {
                    Ok(p) => p,
                    Err(e) => return Some(Err(map_error(e, number))),
                };
                self.number = number;
                let data = match packet.data {
                    Cow::Borrowed(d) => d,
                    Cow::Owned(_) => {
                        return Some(Err(CaptureError::Corrupt {
                            frame: number,
                            reason: "unexpected owned packet".into(),
                        }));
                    }
                };
                Some(Ok(Frame {
                    number,
                    time: packet.timestamp,
                    link,
                    data,
                }))
            }
            Inner::Ng(r) => loop {
                // Copy the frame out: the block borrows the reader, and a
                // loop cannot hand that borrow out.
                let block = match r.next_block()? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(map_error(e, number))),
                };
                let (iface, raw_time) = match block {
                    Block::SectionHeader(_) => {
                        self.interfaces.clear();
                        continue;
                    }
                    Block::InterfaceDescription(idb) => {
                        self.interfaces
                            .push((u32::from(idb.linktype), tsresol(&idb)));
                        continue;
                    }
                    Block::EnhancedPacket(p) => {
                        self.buf.clear();
                        self.buf.extend_from_slice(&p.data);
                        (p.interface_id, Some(p.timestamp))
                    }
                    Block::SimplePacket(p) => {
                        self.buf.clear();
                        self.buf.extend_from_slice(&p.data);
                        (0, None)
                    }
                    Block::Packet(p) => {
                        self.buf.clear();
                        self.buf.extend_from_slice(&p.data);
                        (
                            u32::from(p.interface_id),
                            Some(Duration::from_nanos(p.timestamp)),
                        )
                    }
                    _ => continue,
                };
                self.number = number;
                let Some(&(link, resol)) = self.interfaces.get(iface as usize) else {
                    return Some(Err(CaptureError::Corrupt {
                        frame: number,
                        reason: std::format!(
                            "packet names interface {iface}, which was not described"
                        ),
                    }));
                };
                let time = raw_time.map_or(Duration::ZERO, |t| scale(t, resol));
                return Some(Ok(Frame {
                    number,
                    time,
                    link,
                    data: &self.buf,
                }));
            },
        }
    }
}

fn tsresol(desc: &InterfaceDescriptionBlock<'_>) -> u8 {
    desc.options
        .iter()
        .find_map(|o| match o {
            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        })
        .unwrap_or(6)
}

/// pcap-file reads an enhanced packet's timestamp as nanoseconds; rescale
/// it by the interface's `if_tsresol` (default: microseconds).
fn scale(raw: Duration, resol: u8) -> Duration {
    let units = u64::try_from(raw.as_nanos()).unwrap_or(u64::MAX);
    if resol & 0x80 != 0 {
        let shift = u32::from(resol & 0x7f).min(63);
        let secs = units >> shift;
        let frac = units & ((1u64 << shift) - 1);
        let nanos = (u128::from(frac) * 1_000_000_000) >> shift;
        return Duration::new(secs, u32::try_from(nanos).unwrap_or(0));
    }
    let exp = u32::from(resol).min(19);
    let per_sec = 10u64.pow(exp);
    let secs = units / per_sec;
    let frac = units % per_sec;
    let nanos = u128::from(frac) * 1_000_000_000 / u128::from(per_sec);
    Duration::new(secs, u32::try_from(nanos).unwrap_or(0))
}

fn map_error(e: PcapError, frame: u64) -> CaptureError {
    match e {
        PcapError::IncompleteBuffer => CaptureError::Truncated { frame },
        PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            CaptureError::Truncated { frame }
        }
        PcapError::IoError(io) => CaptureError::Io(io),
        other => CaptureError::Corrupt {
            frame,
            reason: other.to_string(),
        },
    }
}

fn header(link: DataLink) -> PcapHeader {
    PcapHeader {
        snaplen: SNAPLEN,
        datalink: link,
        ts_resolution: TsResolution::MicroSecond,
        endianness: pcap_file::Endianness::Little,
        ..PcapHeader::default()
    }
}

fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "payload does not fit one UDP datagram over IPv4",
    )
}

fn frame_len(data: &[u8]) -> io::Result<u32> {
    u32::try_from(data.len()).map_err(|_| too_long())
}

/// Writes a pcap capture (link type Ethernet) of UDP/IPv4 datagrams, one
/// message each. Wrap a file in a `BufWriter` for speed.
pub struct UdpPcapWriter<W: Write> {
    w: PcapWriter<W>,
    frame: Vec<u8>,
    ip_id: u16,
}

impl<W: Write> core::fmt::Debug for UdpPcapWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("UdpPcapWriter")
    }
}

impl<W: Write> UdpPcapWriter<W> {
    /// Writes the pcap file header (Ethernet, microsecond timestamps).
    ///
    /// # Errors
    /// Any write error.
    pub fn new(writer: W) -> io::Result<Self> {
        let w = PcapWriter::with_header(writer, header(DataLink::ETHERNET)).map_err(io_error)?;
        Ok(UdpPcapWriter {
            w,
            frame: Vec::with_capacity(2048),
            ip_id: 0,
        })
    }

    /// Writes one frame: `payload` in a UDP datagram from `src` to `dst`.
    ///
    /// # Errors
    /// `InvalidInput` when the payload is over 65 507 octets; write errors.
    pub fn write(
        &mut self,
        time: Duration,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        self.ip_id = self.ip_id.wrapping_add(1);
        udp::ethernet_ipv4_udp(&mut self.frame, src, dst, self.ip_id, payload)
            .ok_or_else(too_long)?;
        let len = frame_len(&self.frame)?;
        self.w
            .write_packet(&PcapPacket::new(time, len, &self.frame))
            .map_err(io_error)?;
        Ok(())
    }

    /// Flushes and gives the writer back.
    ///
    /// # Errors
    /// A flush error.
    pub fn into_inner(self) -> io::Result<W> {
        let mut w = self.w.into_writer();
        w.flush()?;
        Ok(w)
    }
}

/// Writes a pcap capture of link type `USER0`: each frame is one message.
pub struct User0PcapWriter<W: Write> {
    w: PcapWriter<W>,
}

impl<W: Write> core::fmt::Debug for User0PcapWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("User0PcapWriter")
    }
}

impl<W: Write> User0PcapWriter<W> {
    /// Writes the pcap file header (USER0, microsecond timestamps).
    ///
    /// # Errors
    /// Any write error.
    pub fn new(writer: W) -> io::Result<Self> {
        let w = PcapWriter::with_header(writer, header(DataLink::USER0)).map_err(io_error)?;
        Ok(User0PcapWriter { w })
    }

    /// Writes one message as one frame.
    ///
    /// # Errors
    /// Write errors; `InvalidInput` for a frame over the snapshot length.
    pub fn write(&mut self, time: Duration, message: &[u8]) -> io::Result<()> {
        let len = frame_len(message)?;
        self.w
            .write_packet(&PcapPacket::new(time, len, message))
            .map_err(io_error)?;
        Ok(())
    }

    /// Flushes and gives the writer back.
    ///
    /// # Errors
    /// A flush error.
    pub fn into_inner(self) -> io::Result<W> {
        let mut w = self.w.into_writer();
        w.flush()?;
        Ok(w)
    }
}

/// Writes a pcapng capture with two interfaces: 0 is Ethernet (UDP/IPv4
/// datagrams), 1 is `USER0` (bare messages). Nanosecond timestamps.
pub struct PcapNgCaptureWriter<W: Write> {
    w: PcapNgWriter<W>,
    frame: Vec<u8>,
    ip_id: u16,
}

impl<W: Write> core::fmt::Debug for PcapNgCaptureWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PcapNgCaptureWriter")
    }
}

impl<W: Write> PcapNgCaptureWriter<W> {
    /// Interface number of the Ethernet interface.
    pub const ETHERNET: u32 = 0;
    /// Interface number of the USER0 interface.
    pub const USER0: u32 = 1;

    /// Writes the section header and the two interface descriptions.
    ///
    /// # Errors
    /// Any write error.
    pub fn new(writer: W) -> io::Result<Self> {
        let mut w = PcapNgWriter::new(writer).map_err(io_error)?;
        for linktype in [DataLink::ETHERNET, DataLink::USER0] {
            let idb = InterfaceDescriptionBlock {
                linktype,
                snaplen: SNAPLEN,
                options: vec![InterfaceDescriptionOption::IfTsResol(9)],
            };
            w.write_block(&Block::InterfaceDescription(idb))
                .map_err(io_error)?;
        }
        Ok(PcapNgCaptureWriter {
            w,
            frame: Vec::with_capacity(2048),
            ip_id: 0,
        })
    }

    fn packet(&mut self, iface: u32, time: Duration, data: &[u8]) -> io::Result<()> {
        let epb = EnhancedPacketBlock {
            interface_id: iface,
            timestamp: time,
            original_len: frame_len(data)?,
            data: Cow::Borrowed(data),
            options: vec![],
        };
        self.w
            .write_block(&Block::EnhancedPacket(epb))
            .map_err(io_error)?;
        Ok(())
    }

    /// Writes `payload` in a UDP/IPv4 datagram on the Ethernet interface.
    ///
    /// # Errors
    /// `InvalidInput` when the payload is over 65 507 octets; write errors.
    pub fn write_udp(
        &mut self,
        time: Duration,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut frame = core::mem::take(&mut self.frame);
        let r = match udp::ethernet_ipv4_udp(&mut frame, src, dst, self.ip_id, payload) {
            Some(()) => self.packet(Self::ETHERNET, time, &frame),
            None => Err(too_long()),
        };
        self.frame = frame;
        r
    }

    /// Writes a bare message on the USER0 interface.
    ///
    /// # Errors
    /// Write errors.
    pub fn write_user0(&mut self, time: Duration, message: &[u8]) -> io::Result<()> {
        self.packet(Self::USER0, time, message)
    }

    /// Flushes and gives the writer back.
    ///
    /// # Errors
    /// A flush error.
    pub fn into_inner(self) -> io::Result<W> {
        let mut w = self.w.into_inner();
        w.flush()?;
        Ok(w)
    }
}

/// The link type as Wireshark's `wtap_encap` would name it.
#[must_use]
pub fn link_name(link: u32) -> &'static str {
    match link {
        link::NULL => "null",
        link::ETHERNET => "ethernet",
        link::RAW => "raw-ip",
        link::LOOP => "loop",
        link::LINUX_SLL => "linux-sll",
        link::USER0 => "user0",
        link::IPV4 => "ipv4",
        link::IPV6 => "ipv6",
        link::LINUX_SLL2 => "linux-sll2",
        _ => "other",
    }
}
