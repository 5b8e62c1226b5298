"""Reference for the Rust port: resemblyzer's embed_utterance in numpy, written
from resemblyzer 0.1.4 (voice_encoder.py, audio.py), librosa's mel and STFT
definitions (librosa 0.7, the version resemblyzer was released against:
centred frames with reflection padding, periodic Hann, power 2, Slaney mel)
and torch.nn.LSTM's equations. Reads the safetensors file with numpy alone.

usage: python3 reference.py encoder.safetensors preprocessed.f32
prints the 256-d embedding as a JSON list.
"""
import json
import struct
import sys

import numpy as np

SR, N_FFT, HOP, N_MELS, PARTIAL = 16000, 400, 160, 40, 160


def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(t["shape"])
    return out


def hz_to_mel(f):
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    f = np.asanyarray(f, dtype=np.float64)
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m):
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters():
    fftfreqs = np.linspace(0, SR / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((N_MELS, 1 + N_FFT // 2))
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:N_MELS + 2] - mel_f[:N_MELS])
    return weights * enorm[:, None]


def melspectrogram(y):
    y = np.pad(y, N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    n_frames = 1 + (len(y) - N_FFT) // HOP
    frames = np.stack([y[t * HOP:t * HOP + N_FFT] * window for t in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return (power @ mel_filters().T).astype(np.float32)


def partial_slices(n_samples, rate=1.3, min_coverage=0.75):
    samples_per_frame = int(SR * 10 / 1000)
    n_frames = int(np.ceil((n_samples + 1) / samples_per_frame))
    frame_step = int(np.round((SR / rate) / samples_per_frame))
    wav_slices, mel_slices = [], []
    steps = max(1, n_frames - PARTIAL + frame_step + 1)
    for i in range(0, steps, frame_step):
        mel_range = np.array([i, i + PARTIAL])
        mel_slices.append(slice(*mel_range))
        wav_slices.append(slice(*(mel_range * samples_per_frame)))
    last = wav_slices[-1]
    coverage = (n_samples - last.start) / (last.stop - last.start)
    if coverage < min_coverage and len(mel_slices) > 1:
        mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
    return wav_slices, mel_slices


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def forward(w, mels):
    x = mels.astype(np.float64)  # (batch, frames, 40)
    for l in range(3):
        w_ih, w_hh = w[f"lstm.weight_ih_l{l}"], w[f"lstm.weight_hh_l{l}"]
        b = w[f"lstm.bias_ih_l{l}"] + w[f"lstm.bias_hh_l{l}"]
        batch, frames, _ = x.shape
        h = np.zeros((batch, 256))
        c = np.zeros((batch, 256))
        outs = []
        for t in range(frames):
            g = x[:, t] @ w_ih.T + h @ w_hh.T + b
            i, f, gg, o = np.split(g, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
            h = sigmoid(o) * np.tanh(c)
            outs.append(h)
        x = np.stack(outs, axis=1)
    raw = np.maximum(0, h @ w["linear.weight"].T + w["linear.bias"])
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def embed_utterance(w, wav):
    wav_slices, mel_slices = partial_slices(len(wav))
    max_len = wav_slices[-1].stop
    if max_len >= len(wav):
        wav = np.pad(wav, (0, max_len - len(wav)), "constant")
    mel = melspectrogram(wav)
    mels = np.array([mel[s] for s in mel_slices])
    partial = forward(w, mels)
    raw = np.mean(partial, axis=0)
    return raw / np.linalg.norm(raw, 2)


if __name__ == "__main__":
    weights = load(sys.argv[1])
    wav = np.fromfile(sys.argv[2], dtype="<f4")
    print(json.dumps([float(v) for v in embed_utterance(weights, wav)]))
