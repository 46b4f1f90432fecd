//! Optional capture (pcap) and key log output of the UDP front ends.

use std::fs::File;
use std::io::BufWriter;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, SystemTime};

use ciot_e2e::driver::SystemClock;
use ciot_e2e::kdf::Rand;
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::Ksi;
use ciot_e2e_analyze::dissect::pcap::UdpPcapWriter;
use ciot_e2e_analyze::keylog::KeyLogFile;

use crate::Failure;

/// Writes datagrams to a capture and keysets to a key log, when asked to.
pub struct Recorder {
    pcap: Option<UdpPcapWriter<BufWriter<File>>>,
    keylog: Option<KeyLogFile>,
    /// Wall-clock time of the clock's start, for capture timestamps.
    epoch: Duration,
    /// Highest trigger counter logged (both endpoints report each keyset).
    logged: u64,
}

fn failed(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::usage(format!("{what}: {e}"))
}

impl Recorder {
    /// Opens the files that were asked for.
    pub fn open(pcap: Option<&Path>, keylog: Option<&Path>) -> Result<Self, Failure> {
        let pcap = match pcap {
            Some(p) => {
                let file = File::create(p).map_err(failed("--pcap"))?;
                Some(UdpPcapWriter::new(BufWriter::new(file)).map_err(failed("--pcap"))?)
            }
            None => None,
        };
        let keylog = match keylog {
            Some(p) => Some(KeyLogFile::create_insecure(p).map_err(failed("--keylog"))?),
            None => None,
        };
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Recorder {
            pcap,
            keylog,
            epoch,
            logged: 0,
        })
    }

    /// Records one datagram (IPv4 peers only; the front ends use loopback).
    pub fn datagram(
        &mut self,
        clock: &SystemClock,
        src: SocketAddr,
        dst: SocketAddr,
        d: &[u8],
    ) -> Result<(), Failure> {
        if let (Some(w), SocketAddr::V4(src), SocketAddr::V4(dst)) = (&mut self.pcap, src, dst) {
            let time = self.epoch + Duration::from_secs_f64(clock.secs());
            w.write(time, SocketAddrV4::clone(&src), dst, d)
                .map_err(failed("--pcap"))?;
        }
        Ok(())
    }

    /// Records the keys of a keyset now in use (once per keyset).
    pub fn keys(
        &mut self,
        ksi: Ksi,
        counter: u64,
        rand: &Rand,
        keys: &SuiteKeys,
    ) -> Result<(), Failure> {
        if let Some(log) = &mut self.keylog
            && counter > self.logged
        {
            log.append(ksi, Some(counter), rand, keys)
                .map_err(failed("--keylog"))?;
            self.logged = counter;
        }
        Ok(())
    }

    /// Flushes the files.
    pub fn finish(&mut self) -> Result<(), Failure> {
        if let Some(w) = self.pcap.take() {
            w.into_inner().map_err(failed("--pcap"))?;
        }
        Ok(())
    }
}
