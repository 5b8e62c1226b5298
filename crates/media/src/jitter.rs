//! Receive-side jitter buffer, played out by RTP timestamp.
//!
//! Packets are stored decoded (PCM) by their extended RTP timestamp; the owner pulls one
//! 20 ms frame per tick. Playout starts `depth` behind the first packet. Timestamp-based
//! playout copes with any packetisation time and with the timestamp gaps RFC 4733 events
//! and silence suppression leave, where a sequence-number buffer would invent losses.
//! Loss is counted separately from sequence numbers ([`SeqStats`]).

use std::collections::BTreeMap;

/// Extends 32-bit RTP timestamps (or 16-bit sequence numbers) to 64 bits across wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    pub fn ts(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some(last) => last + i64::from(ts.wrapping_sub(last as u32) as i32),
        };
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }
    pub fn seq(&mut self, seq: u16) -> i64 {
        let ext = match self.last {
            None => i64::from(seq),
            Some(last) => last + i64::from(seq.wrapping_sub(last as u16) as i16),
        };
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Counters of the buffer (all in packets unless said otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub inserted: u64,
    /// Arrived after their playout time had passed (dropped).
    pub late: u64,
    /// Same timestamp already buffered.
    pub duplicates: u64,
    /// Frames pulled while playing that had no audio at all (concealed with silence).
    pub empty_frames: u64,
    /// Times the playout point was moved (stream jump, SSRC change, drift).
    pub resyncs: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    frame: usize,
    depth: i64,
    max_latency: i64,
    cursor: Option<i64>,
    unwrap: Unwrapper,
    ssrc: Option<u32>,
    packets: BTreeMap<i64, Vec<i16>>,
    playing: bool,
    stats: JitterStats,
}

impl JitterBuffer {
    /// `frame`: samples pulled per tick (160 for 20 ms at 8 kHz); `depth`: initial playout delay
    /// in samples; `max_latency`: buffered audio beyond which we skip ahead (clock drift, bursts).
    pub fn new(frame: usize, depth: usize, max_latency: usize) -> JitterBuffer {
        JitterBuffer {
            frame,
            depth: depth as i64,
            max_latency: max_latency.max(depth + frame) as i64,
            cursor: None,
            unwrap: Unwrapper::default(),
            ssrc: None,
            packets: BTreeMap::new(),
            playing: false,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    fn resync(&mut self, ts: i64) {
        self.packets.clear();
        self.cursor = Some(ts - self.depth);
        self.stats.resyncs += 1;
    }

    /// Adds decoded samples that start at RTP timestamp `ts` of stream `ssrc`.
    pub fn insert(&mut self, ssrc: u32, ts: u32, samples: Vec<i16>) {
        if samples.is_empty() {
            return;
        }
        if self.ssrc != Some(ssrc) {
            // A new source (early media → answer from another box, or a re-INVITE).
            let first = self.ssrc.is_none();
            self.ssrc = Some(ssrc);
            self.unwrap.reset();
            let ext = self.unwrap.ts(ts);
            if first {
                self.cursor = Some(ext - self.depth);
            } else {
                self.resync(ext);
            }
        }
        let ext = self.unwrap.ts(ts);
        let Some(cursor) = self.cursor else { return };
        let len = samples.len() as i64;
        if ext + len <= cursor {
            if cursor - ext > 8000 * 2 {
                // Far in the past: the sender restarted its clock.
                self.resync(ext);
            } else {
                self.stats.late += 1;
                return;
            }
        } else if ext > cursor + 8000 * 2 {
            // Far ahead: a timestamp jump (new talkspurt with a new base).
            self.resync(ext);
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.inserted += 1;
        self.packets.insert(ext, samples);
        // Skip ahead if too much is buffered.
        let cursor = self.cursor.unwrap_or(ext);
        if let Some((&last, s)) = self.packets.iter().next_back() {
            let end = last + s.len() as i64;
            if end - cursor > self.max_latency {
                self.cursor = Some(end - self.depth);
                self.stats.resyncs += 1;
            }
        }
    }

    /// Pulls the next frame into `out` (resized to the frame length). Returns false when the
    /// frame holds no received audio at all (before the first packet or during a gap).
    pub fn pull(&mut self, out: &mut Vec<i16>) -> bool {
        out.clear();
        out.resize(self.frame, 0);
        let Some(cursor) = self.cursor else {
            return false;
        };
        let end = cursor + self.frame as i64;
        let mut any = false;
        // Drop packets that lie entirely before the cursor.
        while let Some((&ts, s)) = self.packets.iter().next() {
            if ts + s.len() as i64 <= cursor {
                self.packets.remove(&ts);
            } else {
                break;
            }
        }
        for (&ts, s) in self.packets.range(..end) {
            let from = ts.max(cursor);
            let to = (ts + s.len() as i64).min(end);
            for t in from..to {
                out[(t - cursor) as usize] = s[(t - ts) as usize];
            }
            any |= to > from;
        }
        self.cursor = Some(end);
        if any {
            self.playing = true;
        } else if self.playing {
            self.stats.empty_frames += 1;
        }
        any
    }

    /// Samples buffered ahead of the playout point.
    pub fn buffered(&self) -> usize {
        let Some(c) = self.cursor else { return 0 };
        self.packets
            .iter()
            .next_back()
            .map_or(0, |(&ts, s)| (ts + s.len() as i64 - c).max(0) as usize)
    }
}

/// RFC 3550 reception statistics from sequence numbers and arrival times: loss and
/// interarrival jitter (§6.4.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct SeqStats {
    unwrap: Unwrapper,
    base: Option<i64>,
    highest: i64,
    pub received: u64,
    /// Jitter in timestamp units (samples), RFC 3550 A.8 estimator.
    jitter: f64,
    last_transit: Option<f64>,
    // For the fraction-lost field of the next report.
    expected_prior: i64,
    received_prior: u64,
}

impl SeqStats {
    /// Records one packet: `arrival` in samples of the media clock (e.g. seconds × 8000).
    pub fn record(&mut self, seq: u16, ts: u32, arrival: f64) {
        let ext = self.unwrap.seq(seq);
        if self.base.is_none() {
            self.base = Some(ext);
            self.highest = ext;
        }
        self.highest = self.highest.max(ext);
        self.received += 1;
        let transit = arrival - f64::from(ts);
        if let Some(prev) = self.last_transit {
            let mut d = transit - prev;
            // Timestamp wraps make transit jump by 2^32; ignore such pairs.
            if d.abs() < 1e9 {
                d = d.abs();
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
    }
    pub fn expected(&self) -> u64 {
        self.base
            .map_or(0, |b| (self.highest - b + 1).max(0) as u64)
    }
    /// Cumulative lost (expected − received; duplicates can make it negative, clamped to 0).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
    pub fn highest_seq(&self) -> u32 {
        self.highest as u32
    }
    pub fn jitter_samples(&self) -> f64 {
        self.jitter
    }
    /// Fraction lost since the previous call, as RFC 3550's 8-bit fixed point.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected() as i64;
        let exp_int = expected - self.expected_prior;
        let rec_int = self.received as i64 - self.received_prior as i64;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost = exp_int - rec_int;
        if exp_int <= 0 || lost <= 0 {
            0
        } else {
            ((lost << 8) / exp_int).min(255) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(v: i16) -> Vec<i16> {
        vec![v; 160]
    }

    #[test]
    fn reorders_and_plays_after_depth() {
        let mut jb = JitterBuffer::new(160, 320, 4000);
        jb.insert(1, 1000, frame(1));
        jb.insert(1, 1320, frame(3));
        jb.insert(1, 1160, frame(2));
        let mut out = Vec::new();
        assert!(!jb.pull(&mut out));
        assert!(!jb.pull(&mut out));
        for want in 1..=3 {
            assert!(jb.pull(&mut out));
            assert!(out.iter().all(|&s| s == want), "{want}");
        }
        assert!(!jb.pull(&mut out));
        assert_eq!(jb.stats().empty_frames, 1);
    }

    #[test]
    fn late_and_duplicate_packets_are_counted() {
        let mut jb = JitterBuffer::new(160, 160, 4000);
        let mut out = Vec::new();
        jb.insert(7, 0, frame(1));
        jb.insert(7, 0, frame(1));
        jb.pull(&mut out);
        jb.pull(&mut out);
        jb.pull(&mut out);
        jb.insert(7, 160, frame(2));
        let s = jb.stats();
        assert_eq!((s.duplicates, s.late), (1, 1));
    }

    #[test]
    fn wraps_timestamps_and_handles_30ms_packets() {
        let mut jb = JitterBuffer::new(160, 0, 4000);
        let start = u32::MAX - 100;
        let mut out = Vec::new();
        let mut got = Vec::new();
        for i in 0..4u32 {
            jb.insert(9, start.wrapping_add(240 * i), vec![i as i16 + 1; 240]);
        }
        for _ in 0..6 {
            jb.pull(&mut out);
            got.extend_from_slice(&out);
        }
        assert_eq!(got.len(), 960);
        for (i, s) in got.iter().enumerate() {
            assert_eq!(*s, (i / 240) as i16 + 1, "sample {i}");
        }
    }

    #[test]
    fn seq_stats_count_loss_and_fraction() {
        let mut s = SeqStats::default();
        for (i, seq) in [65534u16, 65535, 1, 2].iter().enumerate() {
            s.record(*seq, (i * 160) as u32, (i * 160) as f64);
        }
        assert_eq!(s.expected(), 5);
        assert_eq!(s.lost(), 1);
        assert_eq!(s.take_fraction_lost(), 51);
        assert!(s.jitter_samples() < 1.0);
    }

    proptest! {
        /// Any arrival order within the buffer depth plays every sample exactly in order.
        #[test]
        fn any_shuffle_within_depth_plays_in_order(perm in Just((0..20usize).collect::<Vec<_>>()).prop_shuffle(), seed in 0u32..1000) {
            let mut jb = JitterBuffer::new(160, 160 * 20, 160 * 40);
            for &i in &perm {
                jb.insert(seed, seed.wrapping_mul(7919).wrapping_add(160 * i as u32), frame(i as i16));
            }
            let mut out = Vec::new();
            let mut pulls = 0;
            while !jb.pull(&mut out) {
                pulls += 1;
                prop_assert!(pulls < 40);
            }
            prop_assert!(out.iter().all(|&s| s == 0));
            for i in 1..20 {
                prop_assert!(jb.pull(&mut out));
                prop_assert!(out.iter().all(|&s| s == i as i16));
            }
        }

        #[test]
        fn arbitrary_input_never_panics(ops in proptest::collection::vec((any::<u32>(), any::<u32>(), 0usize..400, any::<bool>()), 0..60)) {
            let mut jb = JitterBuffer::new(160, 480, 3200);
            let mut out = Vec::new();
            for (ssrc, ts, n, pull) in ops {
                jb.insert(ssrc % 3, ts, vec![1; n]);
                if pull { jb.pull(&mut out); prop_assert_eq!(out.len(), 160); }
            }
        }
    }
}
