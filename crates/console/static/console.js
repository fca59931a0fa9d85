// Runnel console: the little JavaScript the pages use. Confirmations, the streamed search
// (server-sent events, cancellable) and the live tail. Every page works without it, except
// those two streams.
(function () {
  "use strict";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // A key or value as the server rendered it (render::Shown).
  function field(td, s) {
    if (s.text === null || s.text === undefined) {
      td.appendChild(el("span", "note", s.note));
      return;
    }
    td.appendChild(el(s.pre ? "pre" : "span", s.pre ? "" : "text", s.text));
    if (s.note) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", "note", s.note)); }
    if (s.truncated) {
      td.appendChild(document.createTextNode(" "));
      td.appendChild(el("span", "truncated", "truncated: " + s.truncated + " bytes"));
    }
  }

  // A table row for a record (render::RecordView), as templates/records.html makes it.
  function row(r) {
    var tr = el("tr", "record");
    tr.dataset.partition = r.partition;
    tr.dataset.offset = r.offset;
    tr.appendChild(el("td", "partition", r.partition));
    tr.appendChild(el("td", "offset", r.offset));
    var ts = el("td", "timestamp", r.time);
    ts.title = r.timestamp;
    tr.appendChild(ts);
    var k = el("td", "key"); field(k, r.key); tr.appendChild(k);
    var v = el("td", "value"); field(v, r.value); tr.appendChild(v);
    var h = el("td", "headers");
    r.headers.forEach(function (kv) { h.appendChild(el("div", "header", kv[0] + ": " + kv[1])); });
    tr.appendChild(h);
    return tr;
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.dataset.confirm)) ev.preventDefault();
    });
  });

  var search = document.getElementById("search");
  if (search && window.EventSource) {
    var source = null;
    var progress = document.getElementById("search-progress");
    var cancel = document.getElementById("search-cancel");
    var start = document.getElementById("search-start");
    var body = document.querySelector("#matches tbody");
    function finish(text) {
      if (source) { source.close(); source = null; }
      var done = document.getElementById("search-done");
      if (!done) { done = el("div"); done.id = "search-done"; progress.after(done); }
      done.textContent = text;
      cancel.disabled = true;
      start.disabled = false;
    }
    search.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (source) source.close();
      var old = document.getElementById("search-done");
      if (old) old.remove();
      body.textContent = "";
      progress.textContent = "starting";
      var params = new URLSearchParams(new FormData(search));
      var browse = document.querySelector("#browse select[name=partition]");
      if (browse && browse.value !== "all") params.set("partition", browse.value);
      source = new EventSource(search.dataset.stream + "?" + params.toString());
      cancel.disabled = false;
      start.disabled = true;
      source.addEventListener("progress", function (e) {
        var p = JSON.parse(e.data);
        progress.textContent = "scanned " + p.scanned + " of " + p.total;
      });
      source.addEventListener("match", function (e) { body.appendChild(row(JSON.parse(e.data))); });
      source.addEventListener("done", function (e) {
        var p = JSON.parse(e.data);
        progress.textContent = "scanned " + p.scanned + " of " + p.total;
        finish(p.error ? "failed: " + p.error : "done: " + p.found + " found");
      });
      source.addEventListener("failed", function (e) { finish("failed: " + JSON.parse(e.data)); });
      source.onerror = function () { if (source && source.readyState === 2) finish("failed: connection lost"); };
    });
    cancel.addEventListener("click", function () { finish("cancelled"); });
  }

  var live = document.getElementById("live-status");
  if (live && window.EventSource) {
    var tbody = document.querySelector("#messages tbody");
    var tail = new EventSource(live.dataset.stream);
    tail.addEventListener("ready", function () { live.textContent = "live"; });
    tail.addEventListener("record", function (e) {
      tbody.insertBefore(row(JSON.parse(e.data)), tbody.firstChild);
    });
    tail.addEventListener("failed", function (e) { live.textContent = "failed: " + JSON.parse(e.data); tail.close(); });
    tail.onerror = function () { if (tail.readyState === 2) live.textContent = "disconnected"; };
  }
})();
