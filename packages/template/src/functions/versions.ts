import { KilnError } from '@kiln/core';
import type { HotVersion } from './contract.js';

/** Every HOT version, oldest first. */
export const HOT_VERSIONS: readonly HotVersion[] = [
  '2013-05-23',
  '2014-10-16',
  '2015-04-30',
  '2015-10-15',
  '2016-04-08',
  '2016-10-14',
  '2017-02-24',
  '2017-09-01',
  '2018-03-02',
  '2018-08-31',
  '2021-04-16',
];

const RELEASE_NAMES: Record<string, HotVersion> = {
  newton: '2016-10-14',
  ocata: '2017-02-24',
  pike: '2017-09-01',
  queens: '2018-03-02',
  rocky: '2018-08-31',
  wallaby: '2021-04-16',
};

/** Versions are ISO dates, so string order is release order. */
export function versionAtLeast(version: HotVersion, min: HotVersion): boolean {
  return version >= min;
}

function versionText(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  // YAML 1.1 loaders turn an unquoted date into a Date.
  if (raw instanceof Date && !Number.isNaN(raw.getTime())) return raw.toISOString().slice(0, 10);
  return undefined;
}

/** The canonical date of a `heat_template_version` value (a date or a release name). */
export function canonicalVersion(raw: unknown, path = 'heat_template_version'): HotVersion {
  const text = versionText(raw);
  if (text !== undefined) {
    if ((HOT_VERSIONS as readonly string[]).includes(text)) return text as HotVersion;
    const named = RELEASE_NAMES[text];
    if (named) return named;
  }
  // Heat lists the accepted keys sorted as strings: the dates, then the release names.
  const available = [...HOT_VERSIONS, ...Object.keys(RELEASE_NAMES)].sort().join(', ');
  throw new KilnError(
    'TEMPLATE_VERSION',
    `The template version is invalid: "heat_template_version: ${text ?? String(raw)}". "heat_template_version" should be one of: ${available}`,
    { path },
  );
}
