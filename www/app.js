// The standalone page (index.html): its <clipmatch-search> with the bundle from `?bundle=` (else
// www/demo/). The page's other URL parameters (?engine=, ?threads=1, ...) are read by the search.
import { mountSearch } from './clipmatch-search.js';

const params = new URLSearchParams(location.search);
mountSearch(document.querySelector('clipmatch-search'), {
  bundle: params.get('bundle') || 'www/demo/',
  standalone: true,
  onState: (s) => { document.body.dataset.state = s; },
});
