// The demo site's own code: a tiny router and a signup button. Tally sees the navigations
// through history.pushState; the button calls the documented JavaScript API.
(function () {
  var title = document.getElementById("title");
  function show(path) {
    var name = path.replace(/^\/demo\/?/, "") || "home";
    title.textContent = name.charAt(0).toUpperCase() + name.slice(1);
  }
  document.querySelectorAll("a[data-route]").forEach(function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      history.pushState(null, "", a.getAttribute("data-route"));
      show(location.pathname);
    });
  });
  window.addEventListener("popstate", function () { show(location.pathname); });
  document.getElementById("signup").addEventListener("click", function () {
    window.tally("event", "Signup", { plan: "pro" });
  });
  show(location.pathname);
})();
