// The simulpo page: mic (AudioWorklet) or a WAV file -> int16 PCM over simulstream's
// WebSocket protocol, or typed words in text mode; committed text plain, the tentative
// tail greyed, and how far the translation trails the source.
"use strict";
const $ = (id) => document.getElementById(id);
const RATE = 16000;
let info = null, ws = null, audio = null, sentUnits = 0, pending = [], playing = null;

function wsUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
}

async function loadInfo() {
  info = await (await fetch("/info")).json();
  document.body.className = info.mode;
  const pair = `${info.source_lang || "any"} → ${info.target_lang || "any"}`;
  const chunk = info.mode === "speech" ? `${info.chunk_ms} ms` : `${info.chunk_words} word(s)`;
  $("info").textContent = `policy ${info.policy} · ${info.mode} · ${pair} · chunks of ${chunk}`;
  $("unit").textContent = info.mode === "speech" ? "ms" : "words";
}

function setState(text, error) {
  $("state").textContent = text;
  $("state").className = error ? "error" : "";
}

function open(config) {
  return new Promise((resolve, reject) => {
    $("committed").textContent = ""; $("tentative").textContent = "";
    sentUnits = 0; $("sent").textContent = "0"; $("read").textContent = "0";
    ws = new WebSocket(wsUrl());
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { ws.send(JSON.stringify(config)); setState("streaming"); resolve(); };
    ws.onerror = () => reject(new Error("cannot connect"));
    ws.onmessage = (event) => onReply(JSON.parse(event.data));
    ws.onclose = (event) => { if (event.code !== 1000 && event.reason) setState(event.reason, true); };
  });
}

function onReply(reply) {
  if (reply.error) { setState(reply.error, true); return; }
  if (reply.end_of_processing) { setState("done"); $("tentative").textContent = ""; finish(); return; }
  if (reply.new) {
    const committed = $("committed");
    committed.textContent += (committed.textContent ? info.separator : "") + reply.new;
  }
  $("tentative").textContent = reply.tentative ? info.separator + reply.tentative : "";
  const read = reply.audio_ms !== undefined ? reply.audio_ms : reply.words;
  if (read !== undefined) {
    $("read").textContent = Math.round(read);
    $("trail").textContent = info.mode === "speech" ? `${Math.round(sentUnits - read)} ms` : `${sentUnits - read} words`;
  }
  if (reply.latency_ms !== undefined) $("added").textContent = Math.round(reply.latency_ms);
}

function sendPcm(int16, rate) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send(int16.buffer);
  sentUnits += (int16.length * 1000) / rate;
  $("sent").textContent = Math.round(sentUnits);
}

function endStream() {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ end_of_stream: true }));
  setState("finishing…");
}

function finish() {
  $("start").disabled = false; $("stop").disabled = true; $("wav").disabled = false;
  if (ws) ws.close(1000);
}

async function startMic() {
  $("start").disabled = true; $("wav").disabled = true;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext({ sampleRate: RATE });
  await context.audioWorklet.addModule("/static/worklet.js");
  const node = new AudioWorkletNode(context, "pcm-capture");
  await open({ sample_rate: context.sampleRate, metrics_metadata: { wav_name: "microphone" } });
  node.port.onmessage = (event) => sendPcm(new Int16Array(event.data), context.sampleRate);
  context.createMediaStreamSource(stream).connect(node);
  audio = { context, stream, node };
  $("stop").disabled = false;
}

function stop() {
  $("stop").disabled = true;
  if (audio) {
    audio.node.port.onmessage = null;
    audio.stream.getTracks().forEach((t) => t.stop());
    audio.context.close();
    audio = null;
  }
  if (playing) { clearInterval(playing); playing = null; }
  endStream();
}

function pcm16Wav(bytes) {
  // A mono 16-bit PCM WAV as {rate, pcm}: its samples are sent as they are (the server
  // resamples other rates); anything else is null and goes through decodeAudioData.
  const view = new DataView(bytes);
  const tag = (at) => String.fromCharCode(...new Uint8Array(bytes, at, 4));
  if (bytes.byteLength < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") return null;
  let format = null;
  for (let at = 12; at + 8 <= bytes.byteLength; ) {
    const size = view.getUint32(at + 4, true);
    if (tag(at) === "fmt ") {
      format = { code: view.getUint16(at + 8, true), channels: view.getUint16(at + 10, true),
                 rate: view.getUint32(at + 12, true), bits: view.getUint16(at + 22, true) };
    } else if (tag(at) === "data" && format) {
      if (format.code !== 1 || format.channels !== 1 || format.bits !== 16) return null;
      const n = Math.floor(Math.min(size, bytes.byteLength - at - 8) / 2);
      const pcm = new Int16Array(n);
      for (let i = 0; i < n; i++) pcm[i] = view.getInt16(at + 8 + 2 * i, true);
      return { rate: format.rate, pcm };
    }
    at += 8 + size + (size % 2);
  }
  return null;
}

async function decodeWav(bytes) {
  const context = new AudioContext({ sampleRate: RATE });
  const decoded = await context.decodeAudioData(bytes);
  context.close();
  const samples = decoded.getChannelData(0);
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32768)));
  }
  return { rate: decoded.sampleRate, pcm };
}

async function streamWav(file) {
  $("start").disabled = true; $("wav").disabled = true;
  const bytes = await file.arrayBuffer();
  const { rate, pcm } = pcm16Wav(bytes) || (await decodeWav(bytes));
  await open({ sample_rate: rate, metrics_metadata: { wav_name: file.name } });
  $("stop").disabled = false;
  const frame = Math.round(rate / 10);
  let at = 0;
  playing = setInterval(() => {  // real time: one 100 ms frame every 100 ms
    if (at >= pcm.length) { clearInterval(playing); playing = null; $("stop").disabled = true; endStream(); return; }
    sendPcm(pcm.slice(at, at + frame), rate);
    at += frame;
  }, 100);
}

let typed = 0;
function sendWords(all) {
  const words = $("source").value.split(/\s+/).filter(Boolean);
  const ready = all ? words.length : ($("source").value.match(/\s$/) ? words.length : words.length - 1);
  for (; typed < ready; typed++) {
    ws.send(JSON.stringify({ text: words[typed] }));
    sentUnits += 1;
  }
  $("sent").textContent = sentUnits;
}

async function ensureTextStream() {
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    typed = 0;
    await open({ metrics_metadata: { wav_name: "typed" } });
  }
}

window.addEventListener("load", async () => {
  await loadInfo();
  $("start").onclick = () => startMic().catch((e) => { setState(e.message, true); finish(); });
  $("stop").onclick = stop;
  $("wav").onchange = (e) => e.target.files[0] && streamWav(e.target.files[0]).catch((err) => setState(err.message, true));
  $("source").oninput = async () => { await ensureTextStream(); sendWords(false); };
  $("send").onclick = async () => { await ensureTextStream(); sendWords(true); };
  $("end").onclick = async () => { await ensureTextStream(); sendWords(true); endStream(); };
});
