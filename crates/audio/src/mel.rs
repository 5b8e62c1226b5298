//! The Slaney-scale mel filterbank both of waihu's models read their audio
//! through: Whisper (80 or 128 bands) and the resemblyzer speaker encoder
//! (40 bands). Same arithmetic as librosa's `filters.mel(sr=16000,
//! n_fft=400, n_mels=n)` with its default area normalisation.

/// Sample rate the filterbank is laid out for.
pub const SAMPLE_RATE: usize = 16_000;
/// FFT size (25 ms at 16 kHz): the filters span `N_FFT / 2 + 1` bins.
pub const N_FFT: usize = 400;

/// `n_mels × (N_FFT / 2 + 1)` weights, row-major.
pub fn slaney_filters(n_mels: usize) -> Vec<f32> {
    let n_freqs = N_FFT / 2 + 1;
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    let hz_to_mel = |f: f64| {
        if f < min_log_hz {
            f / f_sp
        } else {
            min_log_mel + (f / min_log_hz).ln() / logstep
        }
    };
    let mel_to_hz = |m: f64| {
        if m < min_log_mel {
            m * f_sp
        } else {
            min_log_hz * ((m - min_log_mel) * logstep).exp()
        }
    };
    let max_mel = hz_to_mel(SAMPLE_RATE as f64 / 2.0);
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut w = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for k in 0..n_freqs {
            let f = k as f64 * SAMPLE_RATE as f64 / N_FFT as f64;
            let lower = (f - mel_f[m]) / (mel_f[m + 1] - mel_f[m]);
            let upper = (mel_f[m + 2] - f) / (mel_f[m + 2] - mel_f[m + 1]);
            w[m * n_freqs + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    w
}
