//! Optional capture (pcap) and key log output of the UDP front ends.

use std::net::SocketAddr;
use std::path::Path;

use ciot_e2e::kdf::Rand;
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::Ksi;

use crate::Failure;
use crate::net::Clock;

/// Writes datagrams to a capture and keysets to a key log, when asked to.
pub struct Recorder {}

impl Recorder {
    /// Opens the files that were asked for.
    pub fn open(pcap: Option<&Path>, keylog: Option<&Path>) -> Result<Self, Failure> {
        if pcap.is_some() || keylog.is_some() {
            return Err(Failure::usage("--pcap and --keylog are not available yet"));
        }
        Ok(Recorder {})
    }

    /// Records one datagram.
    pub fn datagram(
        &mut self,
        _: &Clock,
        _: SocketAddr,
        _: SocketAddr,
        _: &[u8],
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Records the keys of a keyset now in use.
    pub fn keys(
        &mut self,
        _: Option<(Ksi, u64, bool)>,
        _: Option<(&Rand, &SuiteKeys)>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Flushes the files.
    pub fn finish(&mut self) -> Result<(), Failure> {
        Ok(())
    }
}
