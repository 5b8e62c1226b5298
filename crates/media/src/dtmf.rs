//! DTMF: RFC 4733 telephone-events (send and receive) and an in-band Goertzel detector as
//! the fallback for peers that send tones as audio.

use std::f32::consts::PI;

use waihu_audio::goertzel::goertzel;

/// Event code (RFC 4733 §3.2) for a DTMF digit.
pub fn event_code(digit: char) -> Option<u8> {
    Some(match digit.to_ascii_uppercase() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        d @ 'A'..='D' => d as u8 - b'A' + 12,
        _ => return None,
    })
}

/// The digit for an event code 0-15.
pub fn digit_for(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => (b'0' + code) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + code - 12) as char,
        _ => return None,
    })
}

/// One RFC 4733 event payload (4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    pub fn parse(b: &[u8]) -> Option<EventPayload> {
        if b.len() < 4 {
            return None;
        }
        Some(EventPayload {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// What the sender wants on the wire this tick instead of audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    pub payload: EventPayload,
    /// Marker bit: set on the first packet of an event.
    pub marker: bool,
    /// True while the event occupies the stream (audio is not sent this tick).
    pub replaces_audio: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    Idle,
    Tone {
        code: u8,
        sent: u32,
        start_ts: u32,
    },
    End {
        code: u8,
        left: u8,
        start_ts: u32,
        duration: u16,
    },
    Gap {
        left: u32,
    },
}

/// Generates RFC 4733 packets for a queue of digits, one packet per 20 ms tick.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    queue: std::collections::VecDeque<u8>,
    state: SendState,
    /// Tone length in ticks and the pause after it.
    tone_ticks: u32,
    gap_ticks: u32,
    samples_per_tick: u32,
}

impl DtmfSender {
    /// `tone_ms` per digit (≥ 40 recommended), `gap_ms` between digits, `ptime_ms` tick length.
    pub fn new(tone_ms: u32, gap_ms: u32, ptime_ms: u32) -> DtmfSender {
        let ptime = ptime_ms.max(10);
        DtmfSender {
            queue: Default::default(),
            state: SendState::Idle,
            tone_ticks: tone_ms.div_ceil(ptime).max(2),
            gap_ticks: gap_ms.div_ceil(ptime),
            samples_per_tick: ptime * 8,
        }
    }
    /// Queues digits; characters that are not DTMF digits are skipped and returned.
    pub fn push(&mut self, digits: &str) -> Vec<char> {
        let mut bad = Vec::new();
        for c in digits.chars() {
            match event_code(c) {
                Some(code) => self.queue.push_back(code),
                None => bad.push(c),
            }
        }
        bad
    }
    pub fn is_idle(&self) -> bool {
        self.state == SendState::Idle && self.queue.is_empty()
    }
    /// Called once per tick with the RTP timestamp audio would carry this tick. Returns the
    /// event packet to send (with the event's start timestamp) or None to send audio.
    pub fn tick(&mut self, ts: u32) -> Option<(u32, EventPacket)> {
        if self.state == SendState::Idle {
            if let Some(code) = self.queue.pop_front() {
                self.state = SendState::Tone {
                    code,
                    sent: 0,
                    start_ts: ts,
                };
            }
        }
        match self.state {
            SendState::Idle => None,
            SendState::Tone {
                code,
                sent,
                start_ts,
            } => {
                let sent = sent + 1;
                let duration = (sent * self.samples_per_tick).min(u32::from(u16::MAX)) as u16;
                let pkt = EventPacket {
                    payload: EventPayload {
                        event: code,
                        end: false,
                        volume: 10,
                        duration,
                    },
                    marker: sent == 1,
                    replaces_audio: true,
                };
                self.state = if sent >= self.tone_ticks {
                    SendState::End {
                        code,
                        left: 3,
                        start_ts,
                        duration,
                    }
                } else {
                    SendState::Tone {
                        code,
                        sent,
                        start_ts,
                    }
                };
                Some((start_ts, pkt))
            }
            SendState::End {
                code,
                left,
                start_ts,
                duration,
            } => {
                // The end packet is sent three times for robustness (RFC 4733 §2.5.1.4).
                let pkt = EventPacket {
                    payload: EventPayload {
                        event: code,
                        end: true,
                        volume: 10,
                        duration,
                    },
                    marker: false,
                    replaces_audio: true,
                };
                self.state = if left > 1 {
                    SendState::End {
                        code,
                        left: left - 1,
                        start_ts,
                        duration,
                    }
                } else if self.gap_ticks > 0 {
                    SendState::Gap {
                        left: self.gap_ticks,
                    }
                } else {
                    SendState::Idle
                };
                Some((start_ts, pkt))
            }
            SendState::Gap { left } => {
                self.state = if left > 1 {
                    SendState::Gap { left: left - 1 }
                } else {
                    SendState::Idle
                };
                None
            }
        }
    }
}

/// Turns received RFC 4733 packets into digits, once per event (retransmissions and
/// updates share the event's RTP timestamp).
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    last_ts: Option<u32>,
}

impl DtmfReceiver {
    /// Returns the digit when this packet starts a new event.
    pub fn handle(&mut self, ts: u32, payload: &[u8]) -> Option<char> {
        let ev = EventPayload::parse(payload)?;
        let digit = digit_for(ev.event)?;
        if self.last_ts == Some(ts) {
            return None;
        }
        self.last_ts = Some(ts);
        Some(digit)
    }
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Goertzel power of `freq` in `x` (8 kHz), normalised so that a pure sine of that frequency
/// gives its share of the frame's energy (≈1 alone, ≈0.5 per tone in a DTMF pair).
fn share(x: &[f32], freq: f32, energy: f32) -> f32 {
    let n = x.len() as f32;
    goertzel(x, 8000, freq) / (n * energy / 2.0).max(f32::MIN_POSITIVE)
}

/// The DTMF digit in one frame, if the frame holds a valid tone pair.
pub fn detect_frame(frame: &[i16]) -> Option<char> {
    if frame.len() < 80 {
        return None;
    }
    let x: Vec<f32> = frame.iter().map(|&s| f32::from(s)).collect();
    let energy: f32 = x.iter().map(|v| v * v).sum();
    // About -30 dBm0: quieter frames are line noise.
    if energy / (x.len() as f32) < 300.0 * 300.0 {
        return None;
    }
    let rows: Vec<f32> = ROWS.iter().map(|&f| share(&x, f, energy)).collect();
    let cols: Vec<f32> = COLS.iter().map(|&f| share(&x, f, energy)).collect();
    let (ri, &r) = rows.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let (ci, &c) = cols.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    // Both tones carry most of the energy, neither dominates by more than ~8 dB (twist),
    // and the runner-up in each group is well below the winner.
    if r + c < 0.6 || r < 0.1 || c < 0.1 || r / c > 6.3 || c / r > 6.3 {
        return None;
    }
    let second = |v: &[f32], i: usize| {
        v.iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| *p)
            .fold(0.0f32, f32::max)
    };
    if second(&rows, ri) * 4.0 > r || second(&cols, ci) * 4.0 > c {
        return None;
    }
    Some(KEYS[ri][ci])
}

/// In-band DTMF detector over 20 ms frames: reports a digit once it is seen in two
/// consecutive frames, and again only after a frame without it.
#[derive(Debug, Clone, Default)]
pub struct ToneDetector {
    last: Option<char>,
    run: u32,
    reported: bool,
}

impl ToneDetector {
    pub fn push(&mut self, frame: &[i16]) -> Option<char> {
        let d = detect_frame(frame);
        if d != self.last {
            self.last = d;
            self.run = u32::from(d.is_some());
            self.reported = false;
            return None;
        }
        d?;
        self.run += 1;
        if self.run >= 2 && !self.reported {
            self.reported = true;
            return d;
        }
        None
    }
}

/// Synthesises the DTMF tone pair for `digit` (8 kHz), e.g. for in-band sending and tests.
pub fn tone(digit: char, samples: usize, amplitude: f32, phase_offset: usize) -> Vec<i16> {
    let Some(code) = event_code(digit) else {
        return vec![0; samples];
    };
    let (ri, ci) = match code {
        1..=9 => ((code as usize - 1) / 3, (code as usize - 1) % 3),
        0 => (3, 1),
        10 => (3, 0),
        11 => (3, 2),
        _ => ((code as usize - 12), 3),
    };
    (0..samples)
        .map(|n| {
            let t = (n + phase_offset) as f32 / 8000.0;
            let v = amplitude * ((2.0 * PI * ROWS[ri] * t).sin() + (2.0 * PI * COLS[ci] * t).sin())
                / 2.0;
            v as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sender_produces_marker_updates_and_three_ends() {
        let mut s = DtmfSender::new(100, 40, 20);
        assert!(s.push("1x#").contains(&'x'));
        let mut ts = 1000u32;
        let mut pkts = Vec::new();
        for _ in 0..40 {
            if let Some(p) = s.tick(ts) {
                pkts.push(p);
            }
            ts += 160;
        }
        assert!(s.is_idle());
        assert_eq!(pkts.len(), 16, "5 updates + 3 ends per digit");
        assert!(pkts[0].1.marker && !pkts[1].1.marker);
        assert!(pkts[..5].iter().all(|p| p.0 == 1000 && !p.1.payload.end));
        assert!(pkts[5..8]
            .iter()
            .all(|p| p.1.payload.end && p.1.payload.duration == 800));
        assert_eq!(pkts[8].1.payload.event, 11);
        assert!(pkts[8].0 > 1000);
        let mut rx = DtmfReceiver::default();
        let digits: String = pkts
            .iter()
            .filter_map(|(ts, p)| rx.handle(*ts, &p.payload.to_bytes()))
            .collect();
        assert_eq!(digits, "1#");
    }

    #[test]
    fn goertzel_detects_every_key_and_rejects_speechlike_input() {
        for d in "0123456789*#ABCD".chars() {
            let mut det = ToneDetector::default();
            let mut got = None;
            for i in 0..4 {
                got = got.or(det.push(&tone(d, 160, 8000.0, i * 160)));
            }
            assert_eq!(got, Some(d));
        }
        // A single 1 kHz tone and a chord of three tones are not DTMF.
        let single: Vec<i16> = (0..160)
            .map(|n| (8000.0 * (2.0 * PI * 1000.0 * n as f32 / 8000.0).sin()) as i16)
            .collect();
        assert_eq!(detect_frame(&single), None);
        let chord: Vec<i16> = (0..160)
            .map(|n| {
                let t = n as f32 / 8000.0;
                (3000.0
                    * ((2.0 * PI * 697.0 * t).sin()
                        + (2.0 * PI * 1209.0 * t).sin()
                        + (2.0 * PI * 852.0 * t).sin())) as i16
            })
            .collect();
        assert_eq!(detect_frame(&chord), None);
        assert_eq!(detect_frame(&[0; 160]), None);
    }

    #[test]
    fn detection_survives_g711() {
        let t = tone('5', 320, 6000.0, 0);
        let mut enc = Vec::new();
        waihu_audio::g711::Law::Alaw.encode(&t, &mut enc);
        let mut dec = Vec::new();
        waihu_audio::g711::Law::Alaw.decode(&enc, &mut dec);
        let mut det = ToneDetector::default();
        assert_eq!(det.push(&dec[..160]), None);
        assert_eq!(det.push(&dec[160..]), Some('5'));
    }

    proptest! {
        #[test]
        fn payload_roundtrip(event in 0u8..=255, end: bool, volume in 0u8..64, duration: u16) {
            let p = EventPayload { event, end, volume, duration };
            prop_assert_eq!(EventPayload::parse(&p.to_bytes()), Some(p));
        }
        #[test]
        fn detector_never_panics(frame in proptest::collection::vec(any::<i16>(), 0..400)) {
            let _ = detect_frame(&frame);
        }
    }
}
