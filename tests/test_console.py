"""The web console (`runnel console`) in a real browser: headless Chromium driven by Selenium
through Debian's chromedriver, against two clusters, a Runnel broker and Apache Kafka 4.4.0.

Each cluster is seeded with confluent-kafka: a topic of 3 partitions holding 300 keyed JSON
records with headers and explicit timestamps, one record that is not UTF-8, one of 100 KiB, one
with a unique needle in its value, the first records of one partition deleted (so that start
offsets are not all 0); 101 more topics (two pages of the topic list); a SCRAM user; and a
consumer group that read part of the topic, committed and left (Empty). The console runs with a
users file holding an admin and a read-only user.

What the pages show is compared with what the clients report (AdminClient, watermarks,
offsets_for_times, a consumer reading back) and with Apache Kafka's own kafka-consumer-groups;
changes made from the pages (produce, create and delete a topic, alter a config, reset offsets,
delete a group) are checked through the clients and in the console's log; a logged-out browser,
the read-only user and forged CSRF tokens are refused. Every page kind visited is saved as
target/console-screenshots/<cluster>/<page>.png.

One browser serves the module; each cluster (and its console) is started once, and the tests of
one cluster run in file order, each reading the state it checks at the moment it checks it."""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType,
                                   ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion)
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from helpers import KAFKA_NEWEST, ROOT, RUNNEL, ApacheKafka, Broker, free_port, kafka_tool

pytestmark = pytest.mark.timeout(300)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000")
SHOTS = ROOT / "target" / "console-screenshots"

TOPIC = "console-orders"
OTHER = "console-other"
PADDING = [f"console-pad-{i:03d}" for i in range(100)]
GROUP = "console-readers"
# Where the group committed, per partition of TOPIC.
COMMITTED = {0: 30, 1: 45, 2: 60}
# Records of partition 1 deleted (DeleteRecords) before the group reads: its start offset.
TRIMMED = 5
SEEDED = 300
BIG = 100 * 1024  # the large record's value
SHOWN = 64 * 1024  # what the page shows of a value at most
BINARY = b"\xff\xfe\x00\x80not-utf8\xc3\x28"
SCRAM_USER = "console-alice"
USERS = {"admin": ("admin", "admin-pass-7431"), "viewer": ("read-only", "viewer-pass-2216")}
NAV = {"nav-overview": "/", "nav-topics": "/topics", "nav-groups": "/groups", "nav-acls": "/acls",
       "nav-users": "/users", "nav-quotas": "/quotas"}


# ---- the clusters and their consoles ----

class Rec:
    """A record as produced: key and value bytes, headers [(str, bytes)], timestamp (ms)."""

    def __init__(self, key, value, headers, timestamp):
        self.key, self.value, self.headers, self.timestamp = key, value, headers, timestamp


def console_env():
    """The console's environment: away from the user's profiles and RUNNEL_* client settings, no
    colours, and the console's own INFO lines (its target, runnel_console) on."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUNNEL_BIN", "RUNNEL_BOOTSTRAP_SERVER", "RUNNEL_PROFILE")}
    env["RUNNEL_PROFILES"] = "/nonexistent/runnel-profiles"
    env["NO_COLOR"] = "1"
    env["RUNNEL_LOG"] = "warn,runnel_console=info"
    return env


def hash_password(password):
    """`runnel console hash-password` with the password on stdin (no newline: the same whether or
    not it strips one); the hash is the last word it prints."""
    p = subprocess.run([str(RUNNEL), "console", "hash-password"], input=password, capture_output=True,
                       text=True, timeout=60, env=console_env())
    assert p.returncode == 0 and p.stdout.split(), \
        f"runnel console hash-password exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout.split()[-1]


class Console:
    """A `runnel console` process on a port of its choosing (--listen 127.0.0.1:0); its stdout and
    stderr are read all along (into console.log and `lines`) so that it never blocks on a pipe."""

    def __init__(self, bootstrap, workdir: Path, users_file=None):
        if not RUNNEL.exists():
            raise AssertionError(f"{RUNNEL} is missing: run `cargo build --bins` first")
        args = [str(RUNNEL), "console", "--bootstrap-server", bootstrap, "--listen", "127.0.0.1:0"]
        if users_file:
            args += ["--users-file", str(users_file)]
        self.log_path = workdir / "console.log"
        self.lines = []
        self.url = None
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace", env=console_env())
        listening = threading.Event()

        def pump():
            with open(self.log_path, "a") as log:
                for line in self.proc.stdout:
                    log.write(line)
                    log.flush()
                    line = re.sub(r"\x1b\[[0-9;]*m", "", line.rstrip("\n"))
                    self.lines.append(line)
                    m = re.fullmatch(r"console listening on (http://127\.0\.0\.1:(\d+))", line.strip())
                    if m and self.url is None and int(m.group(2)) != 0:
                        self.url = m.group(1)
                        listening.set()
            listening.set()

        threading.Thread(target=pump, daemon=True).start()
        if not listening.wait(60) or self.url is None:
            self.stop()
            raise AssertionError(f"`{' '.join(args)}` printed no `console listening on http://127.0.0.1:PORT` "
                                 f"line (exit status {self.proc.poll()}):\n{self.tail()}")

    def tail(self, n=40):
        return "\n".join(self.lines[-n:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Site:
    """One cluster, what was seeded in it, and its console (with the browser sessions of its
    users: {user: cookies})."""

    def __init__(self, name, bootstrap, tool_version, workdir):
        self.name, self.bootstrap, self.tool_version, self.workdir = name, bootstrap, tool_version, workdir
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "console-test-watermarks"})
        self.records = {}  # (partition, offset) -> Rec, of TOPIC
        self.console = None
        self.sessions = {}
        self.shots = SHOTS / name

    def url(self, path):
        return self.console.url + path

    def watermarks(self, topic=TOPIC):
        parts = self.admin.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: self.reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in sorted(parts)}

    def topics(self):
        """{name: TopicMetadata} as the client sees the cluster, internal topics included."""
        return {n: t for n, t in self.admin.list_topics(timeout=10).topics.items() if t.error is None}

    def group_offsets(self, group):
        res = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
        return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == TOPIC}

    def groups(self):
        return {g.group_id for g in self.admin.list_consumer_groups().result(30).valid}

    def topic_configs(self, topic=TOPIC):
        res = ConfigResource(ResourceType.TOPIC, topic)
        return self.admin.describe_configs([res])[res].result(30)

    def consumer_groups_tool(self, group):
        """kafka-consumer-groups --describe (against Apache Kafka 4.4.0 its own 4.4.0 tool, against
        Runnel the default version): {partition of TOPIC: (current offset, log end offset, lag)}."""
        rc, out, err = kafka_tool("kafka-consumer-groups", "--bootstrap-server", self.bootstrap, "--describe",
                                  "--group", group, version=self.tool_version)
        assert rc == 0, err
        rows = [line.split() for line in out.splitlines() if line.strip()]
        header = next(r for r in rows if "LAG" in r and "PARTITION" in r)
        numbers = ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")
        col = {name: header.index(name) for name in ("TOPIC", "PARTITION", *numbers)}
        got = {}
        for r in rows:
            if r is not header and len(r) >= len(header) and r[col["TOPIC"]] == TOPIC:
                got[int(r[col["PARTITION"]])] = tuple(int(r[col[c]]) for c in numbers)
        assert sorted(got) == [0, 1, 2], out
        return got

    def close(self):
        self.reader.close()


def wait_for(what, predicate, timeout=30, interval=0.2):
    """Polls predicate() until it returns a true value (returned); an exception counts as not yet."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            v = predicate()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - not there yet
            last = e
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
        time.sleep(interval)


def json_value(i):
    return json.dumps({"id": i, "item": f"item-{i}", "qty": i % 7, "tags": ["seed", f"t{i % 5}"]},
                      separators=(",", ":")).encode()


def big_value():
    """BIG bytes of ASCII that never repeat (8-byte cells "0000123|"), so that where the page cuts
    it shows."""
    return "".join(f"{i:07d}|" for i in range(BIG // 8)).encode()


def seed(site):
    admin = site.admin
    new = [NewTopic(TOPIC, 3, 1, config={"retention.ms": "86400000"}), NewTopic(OTHER, 1, 1)]
    new += [NewTopic(t, 1, 1) for t in PADDING]
    for f in admin.create_topics(new, request_timeout=60).values():
        f.result(60)
    wait_for(f"{TOPIC} has leaders", lambda: all(
        p.leader >= 0 for p in admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions.values()))

    producer = Producer({"bootstrap.servers": site.bootstrap, "compression.type": "none", "linger.ms": 5})
    errors = []

    def produce(partition, key, value, headers, timestamp=None):
        def delivered(err, msg):
            if err is not None:
                errors.append(err)
            else:
                site.records[(msg.partition(), msg.offset())] = Rec(key, value, headers, msg.timestamp()[1])
        kw = {"timestamp": timestamp} if timestamp else {}
        producer.produce(TOPIC, key=key, value=value, partition=partition, headers=headers, on_delivery=delivered, **kw)

    # Whole seconds an hour ago, one second apart: a time in the browse form finds record i.
    site.base_ts = (int(time.time()) - 3600) * 1000
    site.needle = f"needle-{uuid.uuid4().hex}"
    for i in range(SEEDED):
        produce(i % 3, f"user-{i % 17}".encode(), json_value(i), [("source", b"seed"), ("seq", str(i).encode())],
                site.base_ts + i * 1000)
        if i == 150:
            value = json.dumps({"note": f"planted {site.needle} here"}).encode()
            produce(2, b"planted", value, [("source", b"plant")], site.base_ts + i * 1000 + 500)
    producer.flush(30)
    produce(0, b"binary", BINARY, [("kind", b"binary")])
    producer.flush(30)
    site.big_value = big_value()
    produce(0, b"big", site.big_value, [("kind", b"big")])
    assert producer.flush(30) == 0 and not errors, errors
    assert len(site.records) == SEEDED + 3
    where = {r.key: po for po, r in site.records.items()}
    site.needle_at, site.binary_at, site.big_at = where[b"planted"], where[b"binary"], where[b"big"]

    tp = TopicPartition(TOPIC, 1, TRIMMED)
    admin.delete_records([tp])[tp].result(30)
    for po in [po for po in site.records if po[0] == 1 and po[1] < TRIMMED]:
        del site.records[po]

    # The group reads part of the topic, commits COMMITTED and leaves: Empty.
    c = Consumer({"bootstrap.servers": site.bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "client.id": "console-test-reader"})
    c.subscribe([TOPIC])
    read, deadline = {}, time.time() + 60
    while any(read.get(p, -1) < o - 1 for p, o in COMMITTED.items()):
        assert time.time() < deadline, f"the group read only up to {read}"
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            read[m.partition()] = max(read.get(m.partition(), -1), m.offset())
    c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in COMMITTED.items()], asynchronous=False)
    c.close()
    wait_for(f"{GROUP} is Empty",
             lambda: admin.describe_consumer_groups([GROUP])[GROUP].result(10).state.name == "EMPTY")

    upsert = UserScramCredentialUpsertion(SCRAM_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")
    for f in admin.alter_user_scram_credentials([upsert]).values():
        f.result(30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through Debian's chromedriver, named explicitly so that Selenium Manager
    never runs (it would try to download a driver)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: the console's browser tests need Debian's chromium and "
                    "chromium-driver packages (scripts/install-test-deps.sh installs them)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # A confirm() stays open until a test answers it (see `follow`), never dismissed behind its back.
    options.set_capability("unhandledPromptBehavior", "ignore")
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER), log_output=str(log)), options=options)
    driver.set_page_load_timeout(90)
    yield driver
    driver.quit()


@pytest.fixture(scope="module", params=["runnel", f"kafka-{KAFKA_NEWEST}"])
def site(request, tmp_path_factory):
    """A seeded cluster (a Runnel broker, or Apache Kafka 4.4.0) and a console of it with a users
    file holding `admin` (admin) and `viewer` (read-only)."""
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    if name == "runnel":
        server = Broker(tmp, {"group.initial.rebalance.delay.ms": "0"}).start()
        stop, tool_version = server.kill9, None
    else:
        server = ApacheKafka(tmp, version=KAFKA_NEWEST).start()
        stop, tool_version = server.stop, KAFKA_NEWEST
    s = Site(name, server.bootstrap, tool_version, tmp)
    try:
        seed(s)
        users = tmp / "console-users"
        users.write_text("# the console tests' users\n" + "".join(
            f"{user}:{role}:{hash_password(password)}\n" for user, (role, password) in USERS.items()))
        shutil.rmtree(s.shots, ignore_errors=True)
        s.shots.mkdir(parents=True)
        s.console = Console(s.bootstrap, tmp, users)
        yield s
    finally:
        if s.console:
            s.console.stop()
        s.close()
        stop()


# ---- the browser ----

ROWS_JS = """
return Array.from(document.querySelectorAll(arguments[0])).map(function (tr) {
  function attrs(el) {
    var a = {};
    for (var i = 0; i < el.attributes.length; i++) a[el.attributes[i].name] = el.attributes[i].value;
    return a;
  }
  var cells = {};
  tr.querySelectorAll(':scope > td').forEach(function (td) {
    var link = td.querySelector('a');
    var cell = {text: td.innerText.trim(), attrs: attrs(td), href: link ? link.getAttribute('href') : null,
                headers: Array.from(td.querySelectorAll('div.header')).map(function (h) {
                  return h.innerText.trim();
                })};
    td.classList.forEach(function (c) { if (!(c in cells)) cells[c] = cell; });
  });
  return {attrs: attrs(tr), cells: cells};
});
"""


class Row:
    def __init__(self, d):
        self.attrs, self.cells = d["attrs"], d["cells"]

    def cell(self, cls):
        assert cls in self.cells, f"no td.{cls} in the row {self.attrs}: {sorted(self.cells)}"
        return self.cells[cls]

    def text(self, cls):
        return self.cell(cls)["text"]

    def int(self, cls):
        return int(self.text(cls))

    def __repr__(self):
        cells = ", ".join(f"{k}: {v['text'][:60]!r}" for k, v in self.cells.items())
        return f"Row({self.attrs}, {{{cells}}})"


def rows(driver, css):
    """The rows `css` selects, read in one round trip: attributes and each td by class."""
    return [Row(d) for d in driver.execute_script(ROWS_JS, css)]


def positions(driver, table):
    """(partition, offset) of each tr.record of `table`, in page order."""
    return [(int(r.attrs["data-partition"]), int(r.attrs["data-offset"])) for r in rows(driver, f"{table} tr.record")]


def one(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    assert len(found) == 1, f"{len(found)} elements match {css} on {driver.current_url}:\n{page_text(driver)}"
    return found[0]


def text(driver, css):
    return one(driver, css).text.strip()


def absent(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    assert not found, f"{css} is on {driver.current_url}, and should not be"


def page_text(driver, n=1500):
    try:
        return driver.find_element(By.TAG_NAME, "body").text[:n]
    except Exception:  # noqa: BLE001 - only for a failure message
        return driver.page_source[:n]


def wait_css(driver, css, timeout=30, what=None):
    """Waits until `css` matches a displayed element; returns it."""
    def shown(d):
        for el in d.find_elements(By.CSS_SELECTOR, css):
            if el.is_displayed():
                return el
        return False
    try:
        return WebDriverWait(driver, timeout, 0.2, ignored_exceptions=(StaleElementReferenceException,)).until(shown)
    except Exception:
        raise AssertionError(f"{what or css}: not on {driver.current_url} within {timeout} s:\n"
                             f"{page_text(driver)}") from None


def path_of(url):
    return urllib.parse.urlparse(url).path


def query_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlparse(url).query, keep_blank_values=True)


def fill(form, **fields):
    # Open the <details> the form may be folded in, as a user would before typing.
    form.parent.execute_script(
        "for (var d = arguments[0].closest('details'); d; d = d.parentElement && d.parentElement.closest('details'))"
        " d.open = true;", form)
    for name, value in fields.items():
        el = form.find_element(By.CSS_SELECTOR, f"[name='{name}']")
        if value == "" and not (el.is_displayed() and el.is_enabled()):
            continue  # an optional field the page hides (e.g. a reset's value for `earliest`)
        if el.tag_name.lower() == "select":
            # By the option's value as the DOM has it (an <option> without a value attribute has
            # its text), which Select.select_by_value (the attribute only) would miss.
            select = Select(el)
            for i, option in enumerate(select.options):
                if option.get_attribute("value") == value:
                    select.select_by_index(i)
                    break
            else:
                raise AssertionError(f"select[name={name}] has no option {value!r}")
        elif (el.get_attribute("type") or "").lower() == "checkbox":
            if el.is_selected() != bool(value):
                el.click()
        else:
            el.clear()
            if value:
                el.send_keys(value)


def submit(driver, form):
    """Clicks the form's submit button, as a user would, and waits for the next page."""
    buttons = (form.find_elements(By.CSS_SELECTOR, "button[type=submit], input[type=submit]")
               or form.find_elements(By.TAG_NAME, "button"))
    assert buttons, f"form#{form.get_attribute('id')} has no submit button"
    follow(driver, buttons[0])


def follow(driver, element, timeout=90):
    """Clicks `element` (a submit button, a link), says yes to a confirm() it asks (as a user who
    means it would), and waits until the next page has loaded. (The old page is marked, rather
    than an element of it watched going stale: chromedriver can answer that with other errors
    while the page changes.)"""
    driver.execute_script("window.consoleTestOldPage = true;")
    element.click()

    def loaded(d):
        try:
            d.switch_to.alert.accept()
            return False
        except NoAlertPresentException:
            pass
        return d.execute_script("return !window.consoleTestOldPage && document.readyState === 'complete';")

    # While the page changes, a script can fail in many ways (and an alert can open): not yet.
    WebDriverWait(driver, timeout, 0.1, ignored_exceptions=(WebDriverException,)).until(
        loaded, message=f"no new page within {timeout} s after clicking {element}")


def screenshot(driver, site, page):
    path = site.shots / f"{page}.png"
    assert driver.save_screenshot(str(path)), path
    data = path.read_bytes()
    assert len(data) > 0 and data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"


def login(driver, site, user, password=None, remember=True):
    """Logs `user` in through form#login in a fresh session; returns the page after it."""
    driver.get(site.url("/login"))
    driver.delete_all_cookies()
    driver.get(site.url("/login"))
    form = one(driver, "form#login")
    fill(form, username=user, password=password or USERS[user][1])
    submit(driver, form)
    if password is None:
        assert text(driver, "span#whoami") == f"{user} ({USERS[user][0]})"
        if remember:
            site.sessions[user] = driver.get_cookies()


def as_user(driver, site, user):
    """Makes the browser `user`'s session (logging in through the form the first time)."""
    if user not in site.sessions:
        return login(driver, site, user)
    if not driver.current_url.startswith(site.console.url + "/"):
        driver.get(site.url("/login"))
    driver.delete_all_cookies()
    for c in site.sessions[user]:
        # Host-only, as the console set it (no domain), for this session only (no expiry).
        driver.add_cookie({k: v for k, v in c.items() if k in ("name", "value", "path", "httpOnly", "secure",
                                                                "sameSite")})


def visit(driver, site, path, user="admin", shot=None):
    as_user(driver, site, user)
    driver.get(site.url(path))
    if shot:
        screenshot(driver, site, shot)


def csrf_token(driver, site, user):
    """The session's CSRF token, from the hidden input of its logout form."""
    visit(driver, site, "/topics", user)
    token = one(driver, "form#logout input[name=csrf]").get_attribute("value")
    assert token
    return token


# ---- raw HTTP ----

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http(url, method="GET", cookies=None, form=None, timeout=120):
    """(status, headers, body bytes) of one request, redirects not followed."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if cookies:
        req.add_header("Cookie", "; ".join(f"{c['name']}={c['value']}" for c in cookies))
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class RecordRows(HTMLParser):
    """(data-partition, data-offset) of each tr.record inside table#`table_id` of a page's HTML."""

    def __init__(self, table_id):
        super().__init__()
        self.table_id, self.depth, self.rows, self.errors = table_id, 0, [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and (self.depth or a.get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag == "tr" and "record" in (a.get("class") or "").split():
            self.rows.append((int(a["data-partition"]), int(a["data-offset"])))
        if tag == "div" and "error" in (a.get("class") or "").split():
            self.errors += 1

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1


def logged(site, since, action, user="admin", timeout=10):
    """The console's INFO lines since line `since` that log `action` by `user`: exactly one."""
    def found():
        # Fields as tracing prints them: a string value may come quoted (action="produce").
        return [line for line in site.console.lines[since:]
                if " INFO " in f" {line} " and re.search(rf'\buser="?{re.escape(user)}\b', line)
                and re.search(rf'\baction="?{re.escape(action)}\b(?!-)', line)]
    try:
        wait_for(f"a log line of action={action} user={user}", found, timeout)
    except AssertionError:
        raise AssertionError(f"no INFO line with user={user} action={action}:\n{site.console.tail()}") from None
    lines = found()
    assert len(lines) == 1, lines


def expect_record(row, rec):
    """A tr.record shows the record as produced (text format)."""
    assert row.text("key") == rec.key.decode(), row
    assert row.text("value") == rec.value.decode(), row
    assert row.cell("headers")["headers"] == [f"{k}: {v.decode()}" for k, v in rec.headers], row
    assert row.text("timestamp"), row


def poll_one(consumer):
    m = consumer.poll(1)
    return m if m is not None and m.error() is None else None


def same_time(value, ms):
    """An export's timestamp: epoch ms, or an ISO 8601 text of the same instant."""
    if isinstance(value, (int, float)):
        return int(value) == ms
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return round(t.timestamp() * 1000) == ms


def user_topics(site):
    return {n: t for n, t in site.topics().items() if not n.startswith("__")}


# ---- logged out ----

def test_logged_out_browser_sees_only_the_login_page(browser, site):
    browser.get(site.url("/login"))
    browser.delete_all_cookies()
    for path in ("/", "/topics", "/groups"):
        browser.get(site.url(path))
        form = wait_css(browser, "form#login")
        assert path_of(browser.current_url) == "/login"
        assert query_of(browser.current_url).get("next") == [path], browser.current_url
        for field in ("input[name=username]", "input[name=password]", "button[type=submit]"):
            assert form.find_elements(By.CSS_SELECTOR, field), field
        for css in ("span#whoami", "form#logout", "table#brokers", "table#topics", "table#groups"):
            absent(browser, css)
        status, headers, _ = http(site.url(path))
        assert status == 303, (path, status)
        location = headers["Location"]
        assert path_of(location) == "/login" and query_of(location).get("next") == [path], location
    screenshot(browser, site, "login")

    # A POST without a session is refused and changes nothing.
    before = site.watermarks()
    for path, form in (
            ("/topics/create", {"name": "console-anonymous", "partitions": "1", "replication": "", "csrf": "x"}),
            (f"/topics/{TOPIC}/produce", {"key": "", "value": "anonymous", "headers": "", "partition": "0"}),
            (f"/groups/{GROUP}/delete", {})):
        status, _, _ = http(site.url(path), "POST", form=form)
        assert status == 403, (path, status)
    assert "console-anonymous" not in site.topics()
    assert site.watermarks() == before
    assert GROUP in site.groups()


# ---- overview ----

def test_login_and_overview(browser, site):
    login(browser, site, "admin", password="not-the-password")
    wait_css(browser, "form#login")
    assert path_of(browser.current_url) == "/login"
    assert text(browser, "div.error")
    absent(browser, "span#whoami")

    login(browser, site, "admin")
    visit(browser, site, "/", shot="overview")
    for nav, path in NAV.items():
        assert path_of(one(browser, f"nav a#{nav}").get_attribute("href")) == path, nav
    assert one(browser, "form#logout").get_attribute("method").lower() == "post"

    md = site.admin.list_topics(timeout=10)
    described = site.admin.describe_cluster(request_timeout=10).result(10)
    assert text(browser, "span#cluster-id") == md.cluster_id == described.cluster_id
    controller = described.controller.id
    assert int(text(browser, "span#controller-id")) == controller
    topics = {n: t for n, t in md.topics.items() if t.error is None}
    user = {n: t for n, t in topics.items() if not n.startswith("__")}
    counts = (int(text(browser, "span#topic-count")), int(text(browser, "span#partition-count")))
    # Whether the overview counts internal topics is the console's choice; either way, both
    # numbers count the same topics.
    everything = (len(topics), sum(len(t.partitions) for t in topics.values()))
    users_only = (len(user), sum(len(t.partitions) for t in user.values()))
    assert counts in (everything, users_only), (counts, everything, users_only)
    counted = topics if counts == everything else user
    assert int(text(browser, "span#under-replicated")) == 0
    assert int(text(browser, "span#offline")) == 0
    # The versions the cluster runs at: its finalized feature levels, as ApiVersions announces them.
    features = dict(f.split("=") for f in text(browser, "span#features").split(", "))
    assert int(features["metadata.version"]) > 0, features

    brokers = {int(r.attrs["data-broker"]): r for r in rows(browser, "table#brokers tr[data-broker]")}
    assert sorted(brokers) == sorted(md.brokers) == sorted(n.id for n in described.nodes)
    payload = sum(len(r.key) + len(r.value) for r in site.records.values())
    for bid, b in md.brokers.items():
        row = brokers[bid]
        assert row.text("host") == b.host and row.int("port") == b.port, row
        assert row.text("controller") == ("yes" if bid == controller else ""), row
        led = sum(1 for t in counted.values() for p in t.partitions.values() if p.leader == bid)
        assert row.int("leaders") == led, (row, led)
        assert row.text("disk"), row
        assert int(row.cell("disk")["attrs"]["data-bytes"]) >= payload, (row, payload)


# ---- topics ----

def test_topics_page(browser, site):
    visit(browser, site, "/topics", shot="topics")
    assert one(browser, "form#create-topic")
    user = user_topics(site)
    assert len(user) > 100
    # 100 a page, internal topics hidden: follow a#next-page to the end.
    seen, pages = {}, 0
    while True:
        page = rows(browser, "table#topics tr[data-topic]")
        pages += 1
        assert 0 < len(page) <= 100 and (pages > 1 or len(page) == 100), (pages, len(page))
        for r in page:
            assert r.attrs["data-topic"] not in seen, r
            seen[r.attrs["data-topic"]] = r
        if pages > 1:
            assert one(browser, "a#prev-page")
        nxt = browser.find_elements(By.CSS_SELECTOR, "a#next-page")
        if not nxt:
            break
        assert pages < 5, "a#next-page on and on"
        follow(browser, nxt[0])
    assert pages == 2
    assert set(seen) == set(user), set(seen) ^ set(user)

    marks = site.watermarks()
    for q, want in (("console-ord", {TOPIC}), ("console-o", {TOPIC, OTHER})):
        visit(browser, site, f"/topics?q={q}")
        assert {r.attrs["data-topic"] for r in rows(browser, "table#topics tr[data-topic]")} == want, q
    row = rows(browser, f"table#topics tr[data-topic='{TOPIC}']")[0]
    assert row.text("name") == TOPIC
    assert path_of(row.cell("name")["href"]) == f"/topics/{TOPIC}", row
    assert row.int("partitions") == 3 and row.int("replication") == 1, row
    assert row.int("records") == sum(high - low for low, high in marks.values()), (row, marks)
    assert int(row.cell("size")["attrs"]["data-bytes"]) >= sum(len(r.key) + len(r.value) for r in site.records.values())
    assert row.text("health") == "healthy", row

    internal = {n: t for n, t in site.topics().items() if n.startswith("__")}
    assert "__consumer_offsets" in internal
    visit(browser, site, "/topics?internal=1&q=__consumer")
    row = rows(browser, "table#topics tr[data-topic='__consumer_offsets']")
    assert len(row) == 1 and row[0].int("partitions") == len(internal["__consumer_offsets"].partitions), row


def test_topic_page(browser, site):
    visit(browser, site, f"/topics/{TOPIC}", shot="topic")
    assert TOPIC in text(browser, "h1")
    md = site.admin.list_topics(TOPIC, timeout=10).topics[TOPIC]
    marks = site.watermarks()
    parts = {int(r.attrs["data-partition"]): r for r in rows(browser, "table#partitions tr[data-partition]")}
    assert sorted(parts) == [0, 1, 2]

    def ids(s):
        return [int(x) for x in re.split(r"[,\s]+", s.strip()) if x]

    for p, row in parts.items():
        pm = md.partitions[p]
        assert row.int("leader") == pm.leader, row
        assert ids(row.text("replicas")) == list(pm.replicas), row
        assert sorted(ids(row.text("isr"))) == sorted(pm.isrs), row
        assert (row.int("start"), row.int("end")) == marks[p], (row, marks[p])
        assert int(row.cell("size")["attrs"]["data-bytes"]) >= 0, row
    assert parts[1].int("start") == TRIMMED
    assert int(parts[0].cell("size")["attrs"]["data-bytes"]) >= BIG

    # The configs as DescribeConfigs reports them: every key, its source, its value.
    configs = {r.attrs["data-config"]: r for r in rows(browser, "table#configs tr[data-config]")}
    entries = site.topic_configs()
    assert set(configs) == set(entries), set(configs) ^ set(entries)
    for key, e in entries.items():
        row, source = configs[key], ConfigSource(e.source).name
        assert row.attrs.get("data-source") == source, (row, source)
        assert ("default" in row.attrs.get("class", "").split()) == (source != "DYNAMIC_TOPIC_CONFIG"), row
        if e.value is not None and not e.is_sensitive:
            assert row.text("value") == e.value, (row, e.value)
    assert configs["retention.ms"].text("value") == "86400000"
    assert configs["retention.ms"].attrs["data-source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["cleanup.policy"].attrs["data-source"] != "DYNAMIC_TOPIC_CONFIG"

    assert path_of(one(browser, "a#browse").get_attribute("href")) == f"/topics/{TOPIC}/messages"
    assert one(browser, "form#alter-config") and one(browser, "form#delete-topic")


def test_alter_config_from_the_page(browser, site):
    for value, source in (("123456789", "DYNAMIC_TOPIC_CONFIG"), ("", None)):
        visit(browser, site, f"/topics/{TOPIC}")
        since = len(site.console.lines)
        form = one(browser, "form#alter-config")
        fill(form, key="retention.bytes", value=value)
        submit(browser, form)
        wait_css(browser, "div.flash")
        logged(site, since, "alter-config")

        def changed():
            e = site.topic_configs()["retention.bytes"]
            s = ConfigSource(e.source).name
            return (s, e) if (s == source and e.value == value if source else s != "DYNAMIC_TOPIC_CONFIG") else None
        got, entry = wait_for(f"retention.bytes={value!r} as the client sees it", changed, timeout=15)
        assert entry.value == (value or "-1"), entry.value
        visit(browser, site, f"/topics/{TOPIC}")
        row = rows(browser, "table#configs tr[data-config='retention.bytes']")[0]
        assert row.attrs["data-source"] == got and row.text("value") == entry.value, row
        assert ("default" in row.attrs.get("class", "").split()) == (got != "DYNAMIC_TOPIC_CONFIG"), row


# ---- messages ----

def test_messages_page(browser, site):
    # Newest first by default, limit 50: one partition's last 50 offsets, newest first.
    marks = site.watermarks()
    visit(browser, site, f"/topics/{TOPIC}/messages?partition=2")
    shown = rows(browser, "table#messages tr.record")
    assert [(int(r.attrs["data-partition"]), int(r.attrs["data-offset"])) for r in shown] == \
        [(2, o) for o in range(marks[2][1] - 1, marks[2][1] - 51, -1)]
    for r in shown:
        rec = site.records[(2, int(r.attrs["data-offset"]))]
        assert r.text("key") == rec.key.decode() and r.int("partition") == 2, r
        assert r.int("offset") == int(r.attrs["data-offset"]), r

    # All partitions: 50 records, and of each partition its newest ones.
    visit(browser, site, f"/topics/{TOPIC}/messages", shot="messages")
    for css in ("select[name=partition]", "input[name=offset]", "input[name=time]", "input[name=newest]",
                "input[name=limit]", "select[name=format]"):
        assert one(browser, f"form#browse {css}")
    assert one(browser, "form#browse input[name=limit]").get_attribute("value") == "50"
    shown = positions(browser, "table#messages")
    assert len(shown) == len(set(shown)) == 50, shown
    for p in {p for p, _ in shown}:
        offsets = sorted((o for q, o in shown if q == p), reverse=True)
        assert offsets == list(range(marks[p][1] - 1, marks[p][1] - 1 - len(offsets), -1)), (p, offsets)
    assert path_of(one(browser, "a#live-tail").get_attribute("href")) == f"/topics/{TOPIC}/messages"
    assert query_of(one(browser, "a#live-tail").get_attribute("href")).get("live") == ["1"]

    # One record by partition and offset: key, value, headers.
    seq42 = next(po for po, r in site.records.items() if r.headers[1:] == [("seq", b"42")])
    visit(browser, site, f"/topics/{TOPIC}/messages?partition={seq42[0]}&offset={seq42[1]}&limit=1")
    (row,) = rows(browser, "table#messages tr.record")
    assert (row.int("partition"), row.int("offset")) == seq42
    expect_record(row, site.records[seq42])

    # From an offset; from a time (ISO 8601), where the client's offsets_for_times puts it.
    visit(browser, site, f"/topics/{TOPIC}/messages?partition=2&offset=10&limit=3")
    assert sorted(int(r.attrs["data-offset"]) for r in rows(browser, "table#messages tr.record")) == [10, 11, 12]
    at = site.base_ts + 100 * 1000  # record 100, in partition 1
    iso = datetime.fromtimestamp(at / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    (found,) = site.reader.offsets_for_times([TopicPartition(TOPIC, 1, at)], timeout=10)
    first = next(o for (p, o), r in site.records.items() if p == 1 and r.headers[1:] == [("seq", b"100")])
    assert found.offset == first
    visit(browser, site, f"/topics/{TOPIC}/messages?partition=1&time={urllib.parse.quote(iso)}&limit=5")
    assert sorted(int(r.attrs["data-offset"]) for r in rows(browser, "table#messages tr.record")) == \
        list(range(first, first + 5)), iso

    # Not UTF-8: hex, noted.
    p, o = site.binary_at
    visit(browser, site, f"/topics/{TOPIC}/messages?partition={p}&offset={o}&limit=1")
    assert text(browser, "table#messages tr.record td.value span.note") == "not UTF-8"
    cell = one(browser, "table#messages tr.record td.value").text.replace("not UTF-8", "").lower()
    assert BINARY.hex() in re.sub(r"0x|[\s:]", "", cell), cell

    # 100 KiB: the first 64 KiB shown, and the full size.
    p, o = site.big_at
    visit(browser, site, f"/topics/{TOPIC}/messages?partition={p}&offset={o}&limit=1")
    assert text(browser, "table#messages tr.record td.value span.truncated") == f"truncated: {BIG} bytes"
    content = one(browser, "table#messages tr.record td.value").get_attribute("textContent")
    big = site.big_value.decode()
    assert big[:SHOWN] in content
    assert big[:SHOWN + 8] not in content, "more than 64 KiB shown"

    # json: pretty-printed; hex: a dump of the bytes.
    p, o = seq42
    visit(browser, site, f"/topics/{TOPIC}/messages?partition={p}&offset={o}&limit=1&format=json")
    pre = one(browser, "table#messages tr.record td.value pre").get_attribute("textContent")
    assert json.loads(pre) == json.loads(site.records[seq42].value) and "\n" in pre.strip(), pre
    visit(browser, site, f"/topics/{TOPIC}/messages?partition={p}&offset={o}&limit=1&format=hex")
    dump = one(browser, "table#messages tr.record td.value").text.lower()
    assert re.search(r"\s*".join(f"{b:02x}" for b in site.records[seq42].value[:12]), dump), dump

    # Export: the records shown, as ndjson.
    p, o = site.binary_at
    visit(browser, site, f"/topics/{TOPIC}/messages?partition={p}&offset={o - 2}&limit=4")
    shown = sorted(positions(browser, "table#messages"))
    assert shown == [(p, x) for x in range(o - 2, o + 2)], shown
    href = one(browser, "a#export").get_attribute("href")
    assert path_of(href) == f"/topics/{TOPIC}/export", href
    assert {k: query_of(href).get(k) for k in ("partition", "offset", "limit")} == \
        {"partition": [str(p)], "offset": [str(o - 2)], "limit": ["4"]}, href
    status, headers, body = http(urllib.parse.urljoin(site.console.url, href), cookies=site.sessions["admin"])
    assert status == 200, body[:500]
    assert headers["Content-Type"].startswith("application/x-ndjson"), headers["Content-Type"]
    assert "attachment" in headers.get("Content-Disposition", ""), headers
    exported = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    assert sorted((x["partition"], x["offset"]) for x in exported) == shown
    for x in exported:
        rec = site.records[(x["partition"], x["offset"])]
        assert x["key"] == rec.key.decode() and "key_encoding" not in x, x
        if rec.value == BINARY:
            assert x.get("value_encoding") == "base64" and base64.b64decode(x["value"]) == BINARY, x
        else:
            assert x["value"] == rec.value.decode() and "value_encoding" not in x, {**x, "value": x["value"][:80]}
        assert x["headers"] == [{"key": k, "value": v.decode()} for k, v in rec.headers], x
        assert same_time(x["timestamp"], rec.timestamp), (x["timestamp"], rec.timestamp)


def start_search(browser, site, q, where, regex):
    visit(browser, site, f"/topics/{TOPIC}/messages")
    form = one(browser, "form#search")
    assert form.find_element(By.CSS_SELECTOR, "input[name=max]").get_attribute("value") == "10000"
    assert one(browser, "button#search-cancel")
    fill(form, q=q, regex=regex, **{"in": where})
    one(browser, "button#search-start").click()
    done = wait_css(browser, "div#search-done", timeout=60)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "div#search-done").text.strip())
    assert "done" in done.text.lower(), done.text
    # Fewer records than `max` (10000): all of them scanned.
    total = sum(high - low for low, high in site.watermarks().values())
    progress = text(browser, "div#search-progress")
    assert re.search(r"scanned (\d+) of (\d+)", progress).groups() == (str(total), str(total)), (progress, total)
    return sorted(positions(browser, "table#matches"))


def test_search_finds_the_planted_needle(browser, site):
    assert start_search(browser, site, site.needle, "any", False) == [site.needle_at]
    screenshot(browser, site, "search")

    pattern = r'"id":12\d,'
    want = sorted(po for po, r in site.records.items() if re.search(pattern, r.value.decode("utf-8", "replace")))
    assert len(want) == 10
    assert start_search(browser, site, pattern, "value", True) == want

    # Without JS: the same search as a page.
    query = urllib.parse.urlencode({"q": site.needle, "in": "any", "max": "10000", "partition": "all"})
    status, _, body = http(site.url(f"/topics/{TOPIC}/search?{query}"), cookies=site.sessions["admin"])
    assert status == 200, body[:500]
    parsed = RecordRows("matches")
    parsed.feed(body.decode())
    assert parsed.rows == [site.needle_at] and parsed.errors == 0


# ---- produce and live tail ----

def test_produce_from_the_page(browser, site):
    before = site.watermarks()[1][1]
    value = f"produced from the console {uuid.uuid4().hex}"
    visit(browser, site, f"/topics/{TOPIC}/messages")
    since = len(site.console.lines)
    form = one(browser, "form#produce")
    fill(form, key="from-console", value=value, headers="origin: console\ntrace: t-123", partition="1")
    submit(browser, form)
    flash = wait_css(browser, "div.flash")
    offset = int(flash.get_attribute("data-offset"))
    assert (int(flash.get_attribute("data-partition")), offset) == (1, before)
    assert path_of(browser.current_url) == f"/topics/{TOPIC}/messages"
    q = query_of(browser.current_url)
    assert (q.get("partition"), q.get("offset"), q.get("limit")) == (["1"], [str(offset)], ["1"]), browser.current_url
    logged(site, since, "produce")
    rec = Rec(b"from-console", value.encode(), [("origin", b"console"), ("trace", b"t-123")], None)
    (row,) = rows(browser, "table#messages tr.record")
    assert (int(row.attrs["data-partition"]), int(row.attrs["data-offset"])) == (1, offset)
    expect_record(row, rec)

    c = Consumer({"bootstrap.servers": site.bootstrap, "group.id": "console-test-check", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(TOPIC, 1, offset)])
        m = wait_for("the produced record", lambda: poll_one(c))
    finally:
        c.close()
    assert (m.partition(), m.offset(), m.key(), m.value()) == (1, offset, rec.key, rec.value)
    assert m.headers() == rec.headers
    rec.timestamp = m.timestamp()[1]
    site.records[(1, offset)] = rec


def test_live_tail(browser, site):
    visit(browser, site, f"/topics/{TOPIC}/messages?live=1")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "span#live-status").text.strip() == "live",
        message="span#live-status never said live")
    value = f"tailed {uuid.uuid4().hex}".encode()
    delivered = []
    p = Producer({"bootstrap.servers": site.bootstrap})
    p.produce(TOPIC, key=b"tail", value=value, partition=2, headers=[("via", b"client")],
              on_delivery=lambda err, msg: delivered.append((err, msg.partition(), msg.offset(), msg.timestamp()[1])))
    assert p.flush(30) == 0
    ((err, partition, offset, ts),) = delivered
    assert err is None
    site.records[(partition, offset)] = Rec(b"tail", value, [("via", b"client")], ts)
    css = f"table#messages tr.record[data-partition='{partition}'][data-offset='{offset}']"
    wait_css(browser, css, timeout=30, what=f"the tailed record {partition}/{offset}")
    (row,) = rows(browser, css)
    expect_record(row, site.records[(partition, offset)])


# ---- groups ----

def test_groups_pages_match_kafka_consumer_groups(browser, site):
    tool = site.consumer_groups_tool(GROUP)
    visit(browser, site, "/groups", shot="groups")
    (row,) = rows(browser, f"table#groups tr[data-group='{GROUP}']")
    assert row.text("state").lower() == "empty" and row.int("members") == 0, row
    assert row.int("lag") == sum(lag for _, _, lag in tool.values()), (row, tool)

    visit(browser, site, f"/groups/{GROUP}", shot="group")
    assert text(browser, "span#group-state").lower() == "empty"
    assert not browser.find_elements(By.CSS_SELECTOR, "table#members tr.member")
    lag = {int(r.attrs["data-partition"]): r for r in rows(browser, f"table#lag tr[data-topic='{TOPIC}']")}
    assert sorted(lag) == [0, 1, 2]
    for p, (current, end, behind) in tool.items():
        shown = (lag[p].int("committed"), lag[p].int("end"), lag[p].int("lag"))
        assert shown == (current, end, behind), (lag[p], tool[p])
    assert int(text(browser, "span#total-lag")) == sum(x[2] for x in tool.values())
    assert one(browser, "form#reset") and one(browser, "form#delete-group")


def test_group_with_a_member(browser, site):
    """An active member shows, and the console refuses to reset its group's offsets."""
    group = "console-active"
    c = Consumer({"bootstrap.servers": site.bootstrap, "group.id": group, "client.id": "console-active-client",
                  "auto.offset.reset": "latest", "enable.auto.commit": False})
    try:
        c.subscribe([TOPIC])
        wait_for("an assignment", lambda: (c.poll(0.2), c.assignment())[1], timeout=60)
        wait_for(f"{group} is Stable",
                 lambda: site.admin.describe_consumer_groups([group])[group].result(10).state.name == "STABLE")
        visit(browser, site, f"/groups/{group}")
        assert text(browser, "span#group-state").lower() == "stable"
        (member,) = rows(browser, "table#members tr.member")
        assert member.text("client-id") == "console-active-client" and member.text("member-id"), member
        assert member.text("host") and TOPIC in member.text("assignment"), member
        before = site.group_offsets(group)

        form = one(browser, "form#reset")
        fill(form, topic="*", strategy="earliest", value="")
        submit(browser, form)
        if not browser.find_elements(By.CSS_SELECTOR, "div.error"):
            # Refused at the dry run or at the confirmation.
            submit(browser, one(browser, "form#reset-confirm"))
        assert text(browser, "div.error")
        assert site.group_offsets(group) == before
    finally:
        c.close()


def test_reset_offsets_to_earliest(browser, site):
    tool = site.consumer_groups_tool(GROUP)
    marks = site.watermarks()
    visit(browser, site, f"/groups/{GROUP}")
    since = len(site.console.lines)
    form = one(browser, "form#reset")
    fill(form, topic=TOPIC, strategy="earliest", value="")
    submit(browser, form)
    plan = {int(r.attrs["data-partition"]): r for r in rows(browser, f"table#reset-plan tr[data-topic='{TOPIC}']")}
    screenshot(browser, site, "reset-plan")
    assert sorted(plan) == [0, 1, 2], page_text(browser)
    for p, row in plan.items():
        assert row.int("current") == tool[p][0] and row.int("target") == marks[p][0], (row, tool[p], marks[p])
    assert marks[1][0] == TRIMMED
    confirm = one(browser, "form#reset-confirm")
    assert confirm.find_element(By.CSS_SELECTOR, "input[name=execute]").get_attribute("value") == "1"
    # A dry run changes nothing.
    assert site.group_offsets(GROUP) == {p: x[0] for p, x in tool.items()}

    submit(browser, confirm)
    assert path_of(browser.current_url) == f"/groups/{GROUP}"
    wait_css(browser, "div.flash")
    logged(site, since, "reset-offsets")
    after = site.consumer_groups_tool(GROUP)
    assert {p: x[0] for p, x in after.items()} == {p: low for p, (low, _) in marks.items()}, after
    lag = {int(r.attrs["data-partition"]): r for r in rows(browser, f"table#lag tr[data-topic='{TOPIC}']")}
    assert {p: r.int("committed") for p, r in lag.items()} == {p: low for p, (low, _) in marks.items()}


def test_delete_group_from_the_page(browser, site):
    group = "console-doomed"
    c = Consumer({"bootstrap.servers": site.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(TOPIC, 0, 3)], asynchronous=False)
    c.close()
    wait_for(f"{group} listed", lambda: group in site.groups())
    visit(browser, site, f"/groups/{group}")
    since = len(site.console.lines)
    submit(browser, one(browser, "form#delete-group"))
    wait_css(browser, "div.flash")
    logged(site, since, "delete-group")
    wait_for(f"{group} deleted", lambda: group not in site.groups())
    visit(browser, site, "/groups")
    assert rows(browser, f"table#groups tr[data-group='{GROUP}']")
    assert not rows(browser, f"table#groups tr[data-group='{group}']")


# ---- create and delete a topic ----

def test_create_and_delete_a_topic_from_the_page(browser, site):
    name = "console-made"
    visit(browser, site, "/topics")
    since = len(site.console.lines)
    form = one(browser, "form#create-topic")
    fill(form, name=name, partitions="4", replication="")
    submit(browser, form)
    assert path_of(browser.current_url) == f"/topics/{name}"
    wait_css(browser, "div.flash")
    assert name in text(browser, "h1")
    logged(site, since, "create-topic")
    md = wait_for(f"{name} in the metadata", lambda: site.topics().get(name))
    assert len(md.partitions) == 4 and all(len(p.replicas) == 1 for p in md.partitions.values())

    # The name typed wrong: refused, the topic stays.
    visit(browser, site, f"/topics/{name}")
    form = one(browser, "form#delete-topic")
    fill(form, confirm=name + "-not")
    submit(browser, form)
    assert text(browser, "div.error")
    assert name in site.topics()

    visit(browser, site, f"/topics/{name}")
    since = len(site.console.lines)
    form = one(browser, "form#delete-topic")
    fill(form, confirm=name)
    submit(browser, form)
    wait_css(browser, "div.flash")
    logged(site, since, "delete-topic")
    wait_for(f"{name} deleted", lambda: name not in site.topics())
    wait_for(f"/topics/{name} answers 404",
             lambda: http(site.url(f"/topics/{name}"), cookies=site.sessions["admin"])[0] == 404)


# ---- the read-only pages ----

def test_acls_users_and_quotas_pages(browser, site):
    visit(browser, site, "/acls", shot="acls")
    # Neither cluster has an authorizer.
    assert text(browser, "div.notice")
    assert not browser.find_elements(By.CSS_SELECTOR, "table#acls tr.acl")
    visit(browser, site, "/users")
    (row,) = rows(browser, f"table#users tr[data-user='{SCRAM_USER}']")
    assert "SCRAM-SHA-256" in row.text("mechanisms"), row
    visit(browser, site, "/quotas")
    assert one(browser, "table#quotas")
    absent(browser, "div.error")


# ---- errors ----

def test_unknown_topic_and_group_answer_404(browser, site):
    visit(browser, site, "/topics/console-no-such-topic")
    assert "does not exist" in text(browser, "div.error").lower()
    assert http(site.url("/topics/console-no-such-topic"), cookies=site.sessions["admin"])[0] == 404
    visit(browser, site, "/groups/console-no-such-group")
    assert text(browser, "div.error")
    assert http(site.url("/groups/console-no-such-group"), cookies=site.sessions["admin"])[0] == 404


def test_unreachable_cluster_answers_503(browser, tmp_path):
    """A console of an address where nothing listens (no users file: no login) serves a 503 page
    saying the cluster is unreachable."""
    console = Console(f"127.0.0.1:{free_port()}", tmp_path)
    try:
        status, _, body = http(console.url + "/")
        assert status == 503, body[:500]
        browser.get(console.url + "/")
        assert "unreachable" in text(browser, "div.error").lower()
    finally:
        console.stop()


# ---- roles and CSRF ----

CHANGES = [
    ("/topics/create", {"name": "console-forbidden", "partitions": "1", "replication": ""}),
    (f"/topics/{TOPIC}/configs", {"key": "retention.ms", "value": "1000"}),
    (f"/topics/{TOPIC}/delete", {"confirm": TOPIC}),
    (f"/topics/{TOPIC}/produce", {"key": "forbidden", "value": "forbidden", "headers": "", "partition": "0"}),
    (f"/groups/{GROUP}/reset", {"topic": TOPIC, "strategy": "latest", "value": ""}),
    (f"/groups/{GROUP}/reset", {"topic": TOPIC, "strategy": "latest", "value": "", "execute": "1"}),
    (f"/groups/{GROUP}/delete", {}),
]


def state(site):
    """What a refused change would have changed."""
    return (sorted(site.topics()), site.watermarks(), site.group_offsets(GROUP),
            site.topic_configs()["retention.ms"].value)


def test_read_only_user(browser, site):
    visit(browser, site, "/topics", user="viewer")
    assert text(browser, "span#whoami") == "viewer (read-only)"
    assert rows(browser, "table#topics tr[data-topic]")
    absent(browser, "form#create-topic")
    visit(browser, site, f"/topics/{TOPIC}", user="viewer")
    assert rows(browser, "table#partitions tr[data-partition]") and rows(browser, "table#configs tr[data-config]")
    absent(browser, "form#alter-config")
    absent(browser, "form#delete-topic")
    visit(browser, site, f"/topics/{TOPIC}/messages", user="viewer")
    assert rows(browser, "table#messages tr.record")
    absent(browser, "form#produce")
    visit(browser, site, f"/groups/{GROUP}", user="viewer")
    assert rows(browser, "table#lag tr[data-partition]")
    absent(browser, "form#reset")
    absent(browser, "form#reset-confirm")
    absent(browser, "form#delete-group")

    token = csrf_token(browser, site, "viewer")
    before = state(site)
    for path, form in CHANGES:
        status, _, _ = http(site.url(path), "POST", cookies=site.sessions["viewer"], form={**form, "csrf": token})
        assert status == 403, (path, form, status)
    assert state(site) == before

    # The same request with the admin's session and token is accepted: the 403s were the role's.
    admin_token = csrf_token(browser, site, "admin")
    path, form = CHANGES[4]  # a dry run
    status, _, body = http(site.url(path), "POST", cookies=site.sessions["admin"], form={**form, "csrf": admin_token})
    assert status == 200 and b"reset-plan" in body, (status, body[:500])
    assert state(site) == before


def test_forged_csrf_token_is_refused(browser, site):
    admin_token = csrf_token(browser, site, "admin")
    viewer_token = csrf_token(browser, site, "viewer")
    assert admin_token != viewer_token
    before = state(site)
    path, form = CHANGES[3]  # produce
    for token in ("forged-token", viewer_token, None):
        body = {**form, **({"csrf": token} if token is not None else {})}
        status, _, _ = http(site.url(path), "POST", cookies=site.sessions["admin"], form=body)
        assert status == 403, (token, status)
    create, fields = CHANGES[0]
    status, _, _ = http(site.url(create), "POST", cookies=site.sessions["admin"], form={**fields, "csrf": "forged"})
    assert status == 403
    assert state(site) == before

    # With the session's own token the same produce goes through.
    status, headers, _ = http(site.url(path), "POST", cookies=site.sessions["admin"],
                              form={**form, "csrf": admin_token})
    assert status == 303, status
    q = query_of(headers["Location"])
    assert path_of(headers["Location"]) == f"/topics/{TOPIC}/messages", headers["Location"]
    assert q.get("partition") == ["0"], headers["Location"]
    offset = int(q["offset"][0])
    assert offset == before[1][0][1]
    site.records[(0, offset)] = Rec(b"forbidden", b"forbidden", [], None)


# ---- logout ----

def test_logout(browser, site):
    login(browser, site, "admin", remember=False)
    browser.get(site.url("/groups"))
    submit(browser, one(browser, "form#logout"))
    wait_css(browser, "form#login")
    assert path_of(browser.current_url) == "/login"
    absent(browser, "span#whoami")
    browser.get(site.url("/topics"))
    wait_css(browser, "form#login")
    assert path_of(browser.current_url) == "/login"
    absent(browser, "table#topics")


# ---- beside a broker ----

def test_console_beside_a_broker(broker_factory, tmp_path):
    """`runnel serve` with console.listeners and console.users.file serves the console through its
    own client listener: the login page first, then the overview of this very broker."""
    users = tmp_path / "console-users"
    users.write_text(f"ops:admin:{hash_password('ops-secret')}\n")
    port = free_port()
    b = broker_factory(**{"console.listeners": f"http://127.0.0.1:{port}", "console.users.file": str(users)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            status, headers, _ = http(url + "/")
            break
        except OSError:
            assert time.time() < deadline, "the console beside the broker did not listen"
            time.sleep(0.1)
    assert status == 303 and headers["Location"].startswith("/login"), (status, dict(headers))
    status, headers, body = http(url + "/login", "POST", form={"username": "ops", "password": "wrong"})
    assert status == 401, body[:300]
    status, headers, _ = http(url + "/login", "POST", form={"username": "ops", "password": "ops-secret"})
    assert status == 303, status
    cookie = headers["Set-Cookie"].split(";")[0].split("=", 1)
    status, _, body = http(url + "/", cookies=[{"name": cookie[0], "value": cookie[1]}])
    assert status == 200, body[:300]
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    cluster_id = admin.describe_cluster().result(10).cluster_id
    assert f'<span id="cluster-id">{cluster_id}</span>' in body.decode(), body[:2000]
    assert f'<td class="port">{b.bootstrap.rsplit(":", 1)[1]}</td>' in body.decode()


def test_console_starts_in_well_under_a_second(tmp_path):
    """From the process's start to its first page served (a cluster that is not there: the 503
    page), without anything else installed."""
    start = time.monotonic()
    p = subprocess.Popen([str(RUNNEL), "console", "-b", f"127.0.0.1:{free_port()}", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()
        m = re.match(r"console listening on (http://\S+)", line)
        assert m, line
        status, _, _ = http(m.group(1) + "/")
        elapsed = time.monotonic() - start
        assert status == 503
        # Generous for a loaded 2-core CI machine and a dev build; it takes milliseconds.
        assert elapsed < 1.0, elapsed
    finally:
        p.terminate()
        p.wait(10)


def test_sasl_logins_pass_through_to_the_cluster(tmp_path):
    """`--auth sasl`: the login form's user and password are the cluster's SASL/PLAIN credentials
    (a wrong password is refused by the broker), `--admin-users` get the admin role and the others
    read-only."""
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="ops" password="ops-pw" user_ops="ops-pw" user_viewer="viewer-pw";')
    port = free_port()
    (tmp_path / "b").mkdir()
    b = Broker(tmp_path / "b", {"listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}", "sasl.enabled.mechanisms": "PLAIN",
                                "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
                                "offsets.topic.num.partitions": "3"}).start()
    p = subprocess.Popen([str(RUNNEL), "console", "-b", b.bootstrap, "--listen", "127.0.0.1:0", "--auth", "sasl",
                          "--admin-users", "ops", "-X", "security.protocol=SASL_PLAINTEXT",
                          "-X", "sasl.mechanism=PLAIN"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.match(r"console listening on (http://\S+)", p.stdout.readline()).group(1)
        status, headers, _ = http(url + "/topics")
        assert status == 303 and headers["Location"].startswith("/login"), status
        status, _, body = http(url + "/login", "POST", form={"username": "viewer", "password": "wrong"})
        assert status == 401 and b"refused" in body, body[:500]

        def session(user, password):
            status, headers, body = http(url + "/login", "POST", form={"username": user, "password": password})
            assert status == 303, body[:500]
            name, value = headers["Set-Cookie"].split(";")[0].split("=", 1)
            return [{"name": name, "value": value}]

        viewer = session("viewer", "viewer-pw")
        status, _, body = http(url + "/topics", cookies=viewer)
        assert status == 200 and b'<span id="whoami">viewer (read-only)</span>' in body, body[:2000]
        assert b'id="create-topic"' not in body
        ops = session("ops", "ops-pw")
        status, _, body = http(url + "/topics", cookies=ops)
        assert status == 200 and b'<span id="whoami">ops (admin)</span>' in body, body[:2000]
        csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        status, _, _ = http(url + "/topics/create", "POST", cookies=ops,
                            form={"csrf": csrf, "name": "made-by-ops", "partitions": "1", "replication": ""})
        assert status == 303
        admin = AdminClient({"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "PLAIN", "sasl.username": "ops", "sasl.password": "ops-pw"})
        assert "made-by-ops" in admin.list_topics(timeout=10).topics
    finally:
        p.terminate()
        p.wait(10)
        b.kill9()


def test_without_logins_changes_still_need_the_pages_token(broker_factory):
    """No users file: no login and no cookie, everyone is an admin; a change still needs the CSRF
    token the pages carry (which a page of another site cannot read)."""
    b = broker_factory()
    p = subprocess.Popen([str(RUNNEL), "console", "-b", b.bootstrap, "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.match(r"console listening on (http://\S+)", p.stdout.readline()).group(1)
        status, headers, body = http(url + "/topics")
        assert status == 200 and "Set-Cookie" not in headers, (status, dict(headers))
        assert b'id="create-topic"' in body and b'id="whoami"' not in body
        csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        form = {"name": "anonymous-made", "partitions": "1", "replication": ""}
        assert http(url + "/topics/create", "POST", form=form)[0] == 403
        assert http(url + "/topics/create", "POST", form={**form, "csrf": "forged"})[0] == 403
        assert http(url + "/topics/create", "POST", form={**form, "csrf": csrf})[0] == 303
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        assert "anonymous-made" in admin.list_topics(timeout=10).topics
    finally:
        p.terminate()
        p.wait(10)
