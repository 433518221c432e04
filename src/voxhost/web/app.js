// voxhost playground: plain JavaScript against the server's own API (no build step, nothing from a CDN).
"use strict";

const $ = (id) => document.getElementById(id);
// Shared state; tests read it too (window.voxhost).
const state = {
  key: localStorage.getItem("voxhost-api-key") || "",
  finals: [],          // final transcripts of the live stream
  lastTranscript: "",  // the latest file transcription
  lastSpeakers: [],  // with "Speakers": each segment's speaker, in order
  lastSpeech: null,    // {bytes, chunks, firstChunkMs, sampleRate} of the latest synthesis
  live: null,          // the running microphone stream
  wakes: [],           // wake words heard on the microphone (when a wake model is served)
  jobs: [],            // the server's newest jobs, as /v1/jobs lists them
  lastDownload: null,  // {id, name, text} of the latest job result downloaded
  errors: 0,
};
window.voxhost = state;

function authHeaders(extra = {}) {
  return state.key ? { ...extra, Authorization: `Bearer ${state.key}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.error && body.error.message) message = `${response.status}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function showError(error) {
  state.errors += 1;
  const box = $("error");
  box.textContent = String((error && error.message) || error);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function fill(select, options) {
  const previous = select.value;
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
  if (options.some(([value]) => value === previous)) select.value = previous;
}

// --- models, voices, server status -------------------------------------------------------------
let models = [];

async function loadModels() {
  models = (await (await api("/v1/models")).json()).data;
  fill($("asr-model"), models.filter((m) => m.task === "asr" && !m.alias_of).map((m) => [m.id, m.id]));
  showLanguages();
}

function showLanguages() {
  const model = models.find((m) => m.id === $("asr-model").value);
  const languages = (model && model.languages) || [];
  $("languages").replaceChildren(...languages.map((code) => new Option(code)));
  $("language").placeholder = languages.length === 1 ? languages[0] : "auto";
}

async function loadVoices() {
  const voices = (await (await api("/v1/audio/voices")).json()).data;
  fill($("voice"), voices.map((v) => [`${v.model}|${v.id}`, `${v.id} (${v.model}, ${v.language})`]));
}

function mib(bytes) {
  return bytes ? `${(bytes / 2 ** 20).toFixed(0)} MiB` : "";
}

async function refreshStatus() {
  const status = await (await api("/status")).json();
  $("version").textContent = `${status.version}${status.ready ? "" : " (not ready: " + status.not_ready.join("; ") + ")"}`;
  const memory = status.memory;
  $("memory").textContent = `workers use ${mib(memory.workers_rss_bytes) || "0 MiB"}` +
    (memory.budget_bytes ? ` of a ${mib(memory.budget_bytes)} budget` : "") +
    `; up ${Math.round(status.uptime_seconds)} s`;
  $("models").tBodies[0].replaceChildren(...status.models.map((m) => {
    const row = document.createElement("tr");
    row.dataset.model = m.id;
    const cells = [m.id, m.task, m.state, mib(m.rss_bytes), m.in_flight, (m.queue && m.queue.waiting) || 0, m.requests];
    for (const value of cells) row.insertCell().textContent = String(value);
    return row;
  }));
}

async function refreshAll() {
  try {
    await Promise.all([loadModels(), refreshStatus(), refreshJobs()]);
    await loadVoices();
    clearError();
  } catch (error) {
    showError(error);
  }
}

// --- transcription of a file ---------------------------------------------------------------------
function setTranscript(final, partial) {
  $("final-text").textContent = final;
  $("partial-text").textContent = partial;
}

// Each speaker's lines in a colour of their own (the first six speakers; then the colours repeat).
function showSpeakers(segments) {
  setTranscript("", "");
  const colours = new Map();
  const lines = segments.map((segment) => {
    if (!colours.has(segment.speaker)) colours.set(segment.speaker, colours.size % 6);
    const line = document.createElement("div");
    line.className = `turn speaker-${colours.get(segment.speaker)}`;
    const who = document.createElement("b");
    who.textContent = segment.speaker;
    line.append(who, " ", segment.text);
    return line;
  });
  $("final-text").replaceChildren(...lines);
  state.lastSpeakers = segments.map((segment) => segment.speaker);
}

async function transcribeFile() {
  const file = $("file").files[0];
  if (!file) return;
  clearError();
  setTranscript("", `transcribing ${file.name}...`);
  const form = new FormData();
  form.append("file", file);
  form.append("model", $("asr-model").value);
  const speakers = $("speakers").checked;
  form.append("response_format", speakers ? "diarized_json" : "verbose_json");
  if ($("language").value) form.append("language", $("language").value);
  try {
    const result = await (await api("/v1/audio/transcriptions", { method: "POST", body: form })).json();
    state.lastTranscript = result.text;
    if (speakers) {
      showSpeakers(result.segments);
    } else {
      state.lastSpeakers = [];
      setTranscript(result.text, "");
    }
  } catch (error) {
    setTranscript("", "");
    showError(error);
  } finally {
    $("file").value = "";
  }
}

// --- jobs: long files transcribed on the server, followed here --------------------------------------
const EXTENSIONS = { text: "txt", srt: "srt", vtt: "vtt", json: "json", verbose_json: "json", diarized_json: "json" };

async function submitJob() {
  const file = $("job-file").files[0];
  if (!file) return;
  clearError();
  const form = new FormData();
  form.append("file", file);
  form.append("model", $("asr-model").value);
  form.append("response_format", $("job-format").value);
  if ($("language").value) form.append("language", $("language").value);
  try {
    await api("/v1/jobs", { method: "POST", body: form });
    await refreshJobs();
  } catch (error) {
    showError(error);
  } finally {
    $("job-file").value = "";
  }
}

async function downloadJob(job) {
  try {
    const text = await (await api(`/v1/jobs/${job.id}/result`)).text();
    const name = `${job.filename}.${EXTENSIONS[job.response_format] || "txt"}`;
    state.lastDownload = { id: job.id, name, text };
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    showError(error);
  }
}

async function removeJob(job) {
  try {
    await api(`/v1/jobs/${job.id}`, { method: "DELETE" });
    await refreshJobs();
  } catch (error) {
    showError(error);
  }
}

function jobButton(label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", action);
  return button;
}

async function refreshJobs() {
  state.jobs = (await (await api("/v1/jobs?limit=20")).json()).data;
  $("job-list").tBodies[0].replaceChildren(...state.jobs.map((job) => {
    const row = document.createElement("tr");
    row.dataset.job = job.id;
    row.dataset.status = job.status;
    row.insertCell().textContent = job.filename;
    row.insertCell().textContent = job.error ? `${job.status}: ${job.error.message}` : job.status;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = job.progress.fraction;
    row.insertCell().append(bar, ` ${Math.round(job.progress.fraction * 100)}%`);
    row.insertCell().textContent = `${Math.round(job.duration)} s`;
    const actions = row.insertCell();
    if (job.status === "completed") actions.append(jobButton("Download", () => downloadJob(job)));
    actions.append(jobButton(["queued", "running"].includes(job.status) ? "Cancel" : "Delete", () => removeJob(job)));
    return row;
  }));
}

// --- live transcription from the microphone --------------------------------------------------------
function pcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out.buffer;
}

async function startLive() {
  clearError();
  const media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = new AudioContext();
  const url = new URL("/v1/audio/transcriptions/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("model", $("asr-model").value);
  url.searchParams.set("sample_rate", String(context.sampleRate));
  if ($("language").value) url.searchParams.set("language", $("language").value);
  // Browsers can't set headers on a WebSocket: the key goes as a subprotocol, as OpenAI's clients do.
  const socket = state.key ? new WebSocket(url, [`openai-insecure-api-key.${state.key}`]) : new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const wake = wakeSocket(context.sampleRate);
  const source = context.createMediaStreamSource(media);
  const processor = context.createScriptProcessor(4096, 1, 1);
  processor.onaudioprocess = (event) => {
    const pcm = pcm16(event.inputBuffer.getChannelData(0));
    if (socket.readyState === WebSocket.OPEN) socket.send(pcm);
    if (wake && wake.readyState === WebSocket.OPEN) wake.send(pcm);
  };
  const finals = [];
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") $("live-state").textContent = `listening (${message.model}, ${context.sampleRate} Hz)`;
    else if (message.type === "partial") setTranscript(finals.join(" "), message.text);
    else if (message.type === "final") {
      if (message.text) finals.push(message.text);
      state.finals.push(message.text);
      setTranscript(finals.join(" "), "");
    } else if (message.type === "error") showError(new Error(message.message || message.code));
    else if (message.type === "done") socket.close();
  };
  socket.onclose = (event) => {
    if (event.code !== 1000 && event.code !== 1005 && state.live) showError(new Error(`live stream closed (${event.code} ${event.reason})`));
    stopLive(false);
  };
  socket.onerror = () => showError(new Error("the live stream could not connect (API key?)"));
  source.connect(processor);
  processor.connect(context.destination);
  state.live = { socket, context, media, processor, source, wake };
  $("record").textContent = "Stop";
  $("record").classList.add("recording");
}

function stopLive(sendStop = true) {
  const live = state.live;
  if (!live) return;
  state.live = null;
  live.processor.disconnect();
  live.source.disconnect();
  live.media.getTracks().forEach((track) => track.stop());
  live.context.close();
  if (sendStop && live.socket.readyState === WebSocket.OPEN) live.socket.send(JSON.stringify({ type: "stop" }));
  if (live.wake) live.wake.close();
  $("wake").hidden = true;
  $("record").textContent = "Record from microphone";
  $("record").classList.remove("recording");
  $("live-state").textContent = "";
}

// The wake word indicator: the microphone's audio also goes to /v1/audio/wake when a wake model is
// served; each word heard lights the indicator for two seconds.
function wakeSocket(sampleRate) {
  if (!models.some((m) => m.task === "wake")) return null;
  const url = new URL("/v1/audio/wake", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("sample_rate", String(sampleRate));
  const socket = state.key ? new WebSocket(url, [`openai-insecure-api-key.${state.key}`]) : new WebSocket(url);
  const indicator = $("wake");
  socket.onopen = () => { indicator.hidden = false; indicator.textContent = "wake word: listening"; };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type !== "detection") return;
    state.wakes.push(message.name);
    indicator.textContent = `wake word: ${message.phrase}`;
    indicator.classList.add("heard");
    setTimeout(() => indicator.classList.remove("heard"), 2000);
  };
  return socket;
}

// --- speech, played while it streams ----------------------------------------------------------------
async function speak() {
  clearError();
  const [model, voice] = $("voice").value.split("|");
  const rate = 24000;  // OpenAI's pcm: 16-bit mono at 24 kHz
  const body = { model, voice, input: $("text").value, speed: Number($("speed").value), response_format: "pcm" };
  $("say").disabled = true;
  $("speak-state").textContent = "synthesizing...";
  const started = performance.now();
  const speech = { bytes: 0, chunks: 0, firstChunkMs: null, sampleRate: rate };
  try {
    const response = await api("/v1/audio/speech", {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    const context = new AudioContext({ sampleRate: rate });
    let playAt = context.currentTime + 0.05;
    let carry = new Uint8Array(0);
    const parts = [];
    const reader = response.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (speech.firstChunkMs === null) speech.firstChunkMs = performance.now() - started;
      speech.bytes += value.length;
      speech.chunks += 1;
      parts.push(value);
      const joined = new Uint8Array(carry.length + value.length);
      joined.set(carry);
      joined.set(value, carry.length);
      const whole = joined.length - (joined.length % 2);
      carry = joined.slice(whole);
      if (!whole) continue;
      const samples = new Int16Array(joined.buffer.slice(0, whole));
      const buffer = context.createBuffer(1, samples.length, rate);
      const channel = buffer.getChannelData(0);
      for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
      const node = context.createBufferSource();
      node.buffer = buffer;
      node.connect(context.destination);
      playAt = Math.max(playAt, context.currentTime);
      node.start(playAt);  // each piece plays as soon as it arrives, right after the one before
      playAt += buffer.duration;
    }
    $("audio").src = URL.createObjectURL(new Blob([wavHeader(speech.bytes, rate), ...parts], { type: "audio/wav" }));
    state.lastSpeech = speech;
    $("speak-state").textContent =
      `${(speech.bytes / 2 / rate).toFixed(1)} s of audio; first sound after ${Math.round(speech.firstChunkMs)} ms`;
  } catch (error) {
    $("speak-state").textContent = "";
    showError(error);
  } finally {
    $("say").disabled = false;
  }
}

function wavHeader(dataBytes, rate) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, s) => [...s].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + dataBytes, true); text(8, "WAVE");
  text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, rate, true); header.setUint32(28, rate * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, dataBytes, true);
  return header.buffer;
}

// --- wiring ---------------------------------------------------------------------------------------
$("api-key").value = state.key;
$("api-key").addEventListener("change", () => {
  state.key = $("api-key").value.trim();
  localStorage.setItem("voxhost-api-key", state.key);
  refreshAll();
});
$("asr-model").addEventListener("change", showLanguages);
$("file").addEventListener("change", transcribeFile);
$("job-file").addEventListener("change", submitJob);
$("say").addEventListener("click", speak);
$("record").addEventListener("click", () => {
  if (state.live) stopLive();
  else startLive().catch((error) => { stopLive(false); showError(error); });
});
refreshAll();
setInterval(() => refreshStatus().catch(() => {}), 3000);
setInterval(() => refreshJobs().catch(() => {}), 1000);
