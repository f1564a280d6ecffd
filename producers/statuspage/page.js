// While the run goes, fetch this same address again and swap <main>; stop when the new page
// says the run has ended. The address carries any signed-link query, so the fetch is allowed
// whenever the page was.
(function () {
  "use strict";
  function schedule(main) {
    if (!main || main.dataset.live !== "true") return;
    var every = parseInt(main.dataset.refresh, 10) || 2000;
    setTimeout(function () { refresh(every); }, every);
  }
  function refresh(every) {
    fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("page");
        var main = document.getElementById("page");
        if (!fresh || !main) return;
        main.replaceWith(fresh);
        document.title = doc.title;
        schedule(fresh);
      })
      .catch(function () {
        setTimeout(function () { refresh(every); }, every * 2);
      });
  }
  schedule(document.getElementById("page"));
})();
