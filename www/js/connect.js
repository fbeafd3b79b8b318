// Where the API base and key live, and the dialog that asks for them.
// The key is kept in sessionStorage (gone when the browser session ends); the API base in
// localStorage (empty = this page's own origin, which is how the ingest server serves it).

const KEY = 'tally.key';
const BASE = 'tally.apiBase';

function read(storage, name) {
  try {
    return storage.getItem(name) || '';
  } catch {
    return '';
  }
}

function write(storage, name, value) {
  try {
    if (value) storage.setItem(name, value);
    else storage.removeItem(name);
  } catch {
    // storage can be disabled; the page then asks again on the next load
  }
}

export const credentials = {
  key: () => read(window.sessionStorage, KEY),
  base: () => read(window.localStorage, BASE),
  setKey: (k) => write(window.sessionStorage, KEY, k),
  setBase: (b) => write(window.localStorage, BASE, b),
  forgetKey: () => write(window.sessionStorage, KEY, ''),
};

/** Checks an API base: empty, or an absolute http(s) URL. Returns the cleaned value or throws. */
export function cleanBase(value) {
  const v = value.trim().replace(/\/+$/, '');
  if (!v) return '';
  let url;
  try {
    url = new URL(v);
  } catch {
    throw new Error('The API base must be a full URL such as https://stats.example.com');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('The API base must start with http:// or https://');
  return v;
}

/**
 * Wires the <dialog id="connect"> in index.html. `onConnect({key, base})` is awaited; if it
 * throws, its message is shown in the dialog and the dialog stays open.
 */
export function createConnectDialog(dialog, { onConnect, onForget }) {
  const form = dialog.querySelector('form');
  const keyInput = form.elements.key;
  const baseInput = form.elements.base;
  const message = dialog.querySelector('.dialog-message');
  const submit = form.querySelector('button[type="submit"]');
  const forget = dialog.querySelector('.forget');
  const cancel = dialog.querySelector('.cancel');

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let base;
    try {
      base = cleanBase(baseInput.value);
    } catch (err) {
      message.textContent = err.message;
      baseInput.focus();
      return;
    }
    const key = keyInput.value.trim() || credentials.key();
    if (!key) {
      message.textContent = 'Enter an API key (made with `ingest-server key create`).';
      keyInput.focus();
      return;
    }
    submit.disabled = true;
    message.textContent = 'Checking…';
    try {
      await onConnect({ key, base });
      message.textContent = '';
      keyInput.value = '';
      dialog.close();
    } catch (err) {
      message.textContent = err.message;
      keyInput.select();
    } finally {
      submit.disabled = false;
    }
  });
  cancel.addEventListener('click', () => dialog.close());
  forget.addEventListener('click', () => {
    credentials.forgetKey();
    keyInput.value = '';
    forget.hidden = true;
    message.textContent = 'The key was forgotten.';
    onForget();
  });

  return {
    open(text = '') {
      baseInput.value = credentials.base();
      baseInput.placeholder = window.location.origin;
      keyInput.placeholder = credentials.key() ? 'saved for this session; leave empty to keep' : 'API key';
      forget.hidden = !credentials.key();
      message.textContent = text;
      if (!dialog.open) dialog.showModal();
      keyInput.focus();
    },
  };
}
