"""The playground page in a real headless browser (Debian's chromium + chromedriver, driven by Selenium),
against a live server with an API key: the key prompt, a file upload's transcript, speech that streams
into the page and its audio element, errors shown, and the microphone path with a fake capture device
playing real speech."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ServerProcess, Speech, assert_transcript, start_server
from voxhost.audio import encode_audio
from voxhost.benchmarks.conversations import EXCHANGE, converse

KEY = "playground-secret"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver")

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI must install chromium and chromium-driver (see .ci/run)")
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("web"), cache_dir,
        "--model", "tiny.en", "--model", "en_US-joe-medium", "--preload", "--api-key", KEY,
        health_headers={"Authorization": f"Bearer {KEY}"},
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory, speech: Speech) -> Path:
    """What the fake capture device plays (in a loop): the test speech, then two seconds of silence."""
    audio = np.concatenate(
        [np.zeros(speech.sample_rate // 2), speech.audio, np.zeros(speech.sample_rate * 2)]
    )
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    path.write_bytes(encode_audio(audio.astype(np.float32), speech.sample_rate, "wav"))
    return path


@pytest.fixture(scope="module")
def browser(microphone: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}", "--autoplay-policy=no-user-gesture-required",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_for(driver: Any, condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    page = driver.execute_script("return JSON.stringify(window.voxhost, (k, v) => k === 'live' ? !!v : v)")
    raise AssertionError(f"timed out waiting for {what}; page state: {page}")


def state(driver: Any, name: str) -> Any:
    return driver.execute_script(f"return window.voxhost.{name}")


def error_text(driver: Any) -> str:
    box = driver.find_element("id", "error")
    return "" if box.get_attribute("hidden") is not None else str(box.text)


def test_the_page_asks_for_the_key_then_shows_the_server(browser: Any, web_server: ServerProcess) -> None:
    browser.get(web_server.url + "/")
    assert browser.title == "voxhost playground"
    assert "401" in wait_for(browser, lambda: error_text(browser), "the 401 without a key")
    key = browser.find_element("id", "api-key")
    key.send_keys(KEY)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
    wait_for(
        browser, lambda: browser.find_elements("css selector", "#models tr[data-model='tiny.en']"), "models"
    )
    wait_for(browser, lambda: not error_text(browser), "the error to clear")
    assert browser.find_element("css selector", "#models tr[data-model='en_US-joe-medium']").text
    voices = browser.find_element("id", "voice").text
    assert "en_US-joe-medium" in voices
    browser.refresh()  # the key is remembered
    wait_for(
        browser, lambda: browser.find_elements("css selector", "#models tr[data-model='tiny.en']"), "models"
    )
    assert not error_text(browser)


def test_file_upload_shows_the_transcript(
    browser: Any, web_server: ServerProcess, speech: Speech, tmp_path: Path
) -> None:
    path = tmp_path / "speech.mp3"
    path.write_bytes(speech.encoded("mp3"))
    browser.find_element("id", "file").send_keys(str(path))
    text = wait_for(browser, lambda: state(browser, "lastTranscript"), "the transcript")
    assert_transcript(text, speech.text)
    assert_transcript(browser.find_element("id", "final-text").text, speech.text)


def test_a_file_uploaded_as_a_job_is_listed_with_its_progress_and_downloads(
    browser: Any, web_server: ServerProcess, speech: Speech, tmp_path: Path
) -> None:
    path = tmp_path / "meeting.wav"
    path.write_bytes(speech.encoded("wav"))
    browser.find_element("css selector", "#job-format option[value='srt']").click()
    browser.find_element("id", "job-file").send_keys(str(path))
    done = "#job-list tr[data-status='completed']"
    row = wait_for(browser, lambda: browser.find_elements("css selector", done), "the job completed")[0]
    assert "meeting.wav" in row.text
    assert "100%" in row.text
    row.find_element("xpath", ".//button[text()='Download']").click()
    download = wait_for(browser, lambda: state(browser, "lastDownload"), "the download")
    assert download["name"] == "meeting.wav.srt"
    assert "-->" in download["text"]
    assert_transcript(download["text"].split("\n", 2)[-1], speech.text)
    assert not error_text(browser)


def test_file_upload_with_speakers_colours_each_speaker(
    browser: Any, web_server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(converse(EXCHANGE).wav())
    browser.find_element("id", "speakers").click()
    try:
        browser.find_element("id", "file").send_keys(str(path))
        speakers = wait_for(browser, lambda: state(browser, "lastSpeakers"), "the speakers")
    finally:
        browser.find_element("id", "speakers").click()  # off again for the tests after this one
    assert list(dict.fromkeys(speakers)) == ["A", "B", "C"]
    turns = browser.find_elements("css selector", "#final-text .turn")
    assert turns[0].text.startswith("A Hello there")
    colours = {
        t.find_element("css selector", "b").text: t.value_of_css_property("border-left-color") for t in turns
    }
    assert len(set(colours.values())) == 3


def test_speech_streams_into_the_page_and_its_audio_element(browser: Any, web_server: ServerProcess) -> None:
    browser.execute_script("window.voxhost.lastSpeech = null")
    browser.find_element("id", "say").click()
    speech = wait_for(browser, lambda: state(browser, "lastSpeech"), "the speech")
    assert speech["bytes"] > 24000 * 2 * 2  # more than two seconds of 24 kHz 16-bit audio
    assert speech["chunks"] >= 2  # it arrived in pieces, each played as it came
    script = "return document.getElementById('audio').duration"
    duration = wait_for(browser, lambda: browser.execute_script(script), "the audio element to load")
    assert abs(duration - speech["bytes"] / 2 / 24000) < 0.1


def test_errors_are_shown(browser: Any, web_server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "not-audio.wav"
    path.write_bytes(b"this is no audio file" * 20)
    browser.find_element("id", "file").send_keys(str(path))
    message = wait_for(browser, lambda: error_text(browser), "the error")
    assert message.startswith("400:")
    assert "decode" in message


def test_microphone_streams_live_and_shows_the_final(
    browser: Any, web_server: ServerProcess, speech: Speech
) -> None:
    browser.execute_script("window.voxhost.finals = []")
    record = browser.find_element("id", "record")
    record.click()
    try:
        finals = wait_for(browser, lambda: [f for f in state(browser, "finals") if f], "a final", timeout=90)
    finally:
        if browser.execute_script("return !!window.voxhost.live"):
            record.click()
    assert_transcript(finals[0], speech.text, max_errors=2)
    assert not error_text(browser)


ATTACK_PAGE = """<!doctype html><title>another site</title><script>
const target = %(target)s;
window.attack = {done: false};
async function attempt() {
  // a "simple" cross-site request: no preflight, the browser sends it and hides the answer
  try {
    await fetch(target + "/v1/models/tiny.en/load", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: "x"});
    window.attack.simple = "sent";
  } catch (e) { window.attack.simple = "failed"; }
  // a read of the server's state (CORS): must fail
  try {
    const answer = await fetch(target + "/status");
    window.attack.read = "read " + answer.status;
  } catch (e) { window.attack.read = "failed"; }
  // a live-transcription WebSocket: no CORS protects it, only the server's Origin check
  window.attack.socket = await new Promise((resolve) => {
    const ws = new WebSocket(target.replace("http", "ws") + "/v1/audio/transcriptions/live");
    ws.onmessage = (m) => { resolve("open: " + m.data); ws.close(); };
    ws.onerror = () => resolve("refused");
  });
  window.attack.done = true;
}
attempt();
</script>"""


def test_a_page_from_another_origin_cannot_use_the_api(browser: Any, tmp_path: Path, cache_dir: Path) -> None:
    """A keyless server (as the README starts it) and a page of another origin (another port of
    127.0.0.1) that tries a simple cross-site POST, a read, and a live WebSocket: none gets through,
    and the server's own playground still works without a key."""
    import http.server
    import json
    import threading

    from voxhost.harness import free_port

    server = start_server(tmp_path, cache_dir, "--model", "tiny.en")
    page = (ATTACK_PAGE % {"target": json.dumps(server.url)}).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{other.server_address[1]}/")
        wait_for(
            browser,
            lambda: browser.execute_script("return window.attack && window.attack.done"),
            "the attack",
        )
        attack = browser.execute_script("return window.attack")
        assert attack["read"] == "failed"
        assert attack["socket"] == "refused"
        import httpx

        status = httpx.get(server.url + "/status", timeout=10).json()
        assert status["models"][0]["state"] != "ready"  # the cross-site load was refused
        assert "403" in server.log()
        # the server's own page (same origin) works, keyless
        browser.get(server.url + "/")
        wait_for(
            browser,
            lambda: browser.find_elements("css selector", "#models tr[data-model='tiny.en']"),
            "models",
        )
        assert not error_text(browser)
    finally:
        other.shutdown()
        other.server_close()
        server.stop()
