//! RTP, G.711, DTMF, jitter buffer, RTCP, WAV, recording. Sans-IO frame processing.
