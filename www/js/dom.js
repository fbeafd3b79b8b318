// Building DOM nodes by construction: data only ever becomes text nodes or attribute values,
// never HTML. There is deliberately no helper here that parses a string as markup.

const EVENT_ATTR = /^on/i;

/**
 * h('button', {class: 'x', type: 'button', onclick: fn}, 'label', child, ...)
 * Strings and numbers become text nodes; null/false children are skipped; arrays are flattened.
 * Attributes go through setAttribute (except `on*`, which must be functions and are added as
 * listeners, and `dataset`), so a value can never be interpreted as markup or script.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (EVENT_ATTR.test(name)) {
      if (typeof value !== 'function') throw new TypeError(`${name} must be a function`);
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'style' || name === 'srcdoc') {
      throw new TypeError(`${name} is not settable through h()`);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces all children of `el` with `children` (same rules as h). */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
