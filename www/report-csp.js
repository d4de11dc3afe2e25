// Logs a Content-Security-Policy violation in a worker as one console error. The browser reports a
// page's violations to its console itself, but not always a worker's where tools can see them.
self.addEventListener('securitypolicyviolation', (e) => {
  console.error(`clipmatch: blocked by the Content-Security-Policy (${e.effectiveDirective}): ${e.blockedURI || 'inline code'}`);
});
