// Live progress of a harvest job: polls the job API while it runs (no inline script, CSP-safe).
(function () {
  var root = document.getElementById("job");
  if (!root) return;
  var url = root.getAttribute("data-url");
  var labels = {};
  try { labels = JSON.parse(root.getAttribute("data-labels") || "{}"); } catch (e) { labels = {}; }
  function set(field, value) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (el) el.textContent = value;
  }
  function poll() {
    fetch(url, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        var job = body.result;
        set("status", labels[job.status] || job.status);
        set("done", job.done);
        set("total", job.total === null ? "?" : job.total);
        var bar = root.querySelector('[data-field="progress"]');
        if (bar) { bar.max = job.total || 1; bar.value = job.done; }
        Object.keys(job.counts || {}).forEach(function (k) {
          var el = root.querySelector('[data-count="' + k + '"]');
          if (el) el.textContent = job.counts[k];
        });
        if (job.status === "running" || job.status === "pending") {
          setTimeout(poll, (job.poll_seconds || 2) * 1000);
        }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();
