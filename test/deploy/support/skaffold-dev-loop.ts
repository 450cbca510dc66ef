/**
 * What `skaffold dev` does when a file is saved, decided the way skaffold decides it, from the real files:
 *
 * 1. An artifact's dependencies are the files that any COPY or ADD of any stage of its Dockerfile can take
 *    from the build context (`COPY --from=<stage>` takes nothing from it), less what the ignore file
 *    excludes, plus the Dockerfile itself. The ignore file is `<Dockerfile>.dockerignore` when it exists,
 *    else the context's `.dockerignore` (skaffold: pkg/skaffold/docker/dependencies.go and parse.go). A
 *    source that does not exist is a glob (Go's filepath.Glob: `*`, `?`, `[...]`, no `**`); a COPY none of
 *    whose sources matches anything is an error.
 * 2. A saved file that is no dependency of an artifact does nothing to it.
 * 3. A dependency that matches one of the artifact's `sync.manual` rules (a doublestar glob relative to the
 *    context) is copied into the running container at `<dest>/<path relative to the context>` (less the
 *    rule's `strip` prefix); any other dependency rebuilds and redeploys the image.
 */
import type { Ignore } from '@balena/dockerignore';
import { DockerfileParser, JSONInstruction } from 'dockerfile-ast';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import picomatch from 'picomatch';
import type { Data } from './files.js';

// A CommonJS module whose types declare a default export: required, so it is the function under every loader.
const ignore = createRequire(import.meta.url)('@balena/dockerignore') as () => Ignore;

export interface SyncRule {
  src: string;
  dest: string;
  strip?: string;
}

export interface Artifact {
  image: string;
  /** The build context, relative to the folder of skaffold.yaml. */
  context: string;
  /** The Dockerfile, relative to the context. */
  dockerfile: string;
  target?: string;
  sync: SyncRule[];
}

export type Decision = { action: 'nothing' } | { action: 'sync'; to: string } | { action: 'rebuild' };

/** The artifacts `skaffold dev` builds, with or without a profile (whose `build` replaces the top one). */
export function skaffoldArtifacts(skaffold: Data, profile?: string): Artifact[] {
  const chosen = profile ? (skaffold.profiles ?? []).find((p: Data) => p.name === profile) : undefined;
  if (profile && !chosen) throw new Error(`skaffold.yaml has no profile ${profile}`);
  const artifacts: Data[] = chosen?.build?.artifacts ?? skaffold.build?.artifacts ?? [];
  return artifacts.map((artifact) => ({
    image: String(artifact.image),
    context: String(artifact.context ?? '.'),
    dockerfile: String(artifact.docker?.dockerfile ?? 'Dockerfile'),
    target: artifact.docker?.target as string | undefined,
    sync: ((artifact.sync?.manual ?? []) as Data[]).map((rule) => ({
      src: String(rule.src),
      dest: String(rule.dest),
      ...(rule.strip === undefined ? {} : { strip: String(rule.strip) }),
    })),
  }));
}

/** The context sources of each COPY/ADD of every stage, as written (one list per instruction). */
export function copySources(dockerfileText: string): string[][] {
  const copies: string[][] = [];
  for (const instruction of DockerfileParser.parse(dockerfileText).getInstructions()) {
    const keyword = instruction.getKeyword();
    if ((keyword !== 'COPY' && keyword !== 'ADD') || !(instruction instanceof JSONInstruction)) continue;
    if (instruction.getFlags().some((flag) => flag.getName() === 'from')) continue;
    // The JSON form (`COPY ["a", "b", "./"]`) or the plain one; the last word is the destination.
    const json = instruction.getJSONStrings().map((word) => JSON.parse(word.getValue()) as string);
    const words = json.length > 0 ? json : instruction.getArguments().map((word) => word.getValue());
    const sources = words.slice(0, -1).filter((source) => !/^https?:\/\//.test(source));
    if (sources.some((source) => source.includes('$')))
      throw new Error(`${keyword} ${words.join(' ')}: variables in COPY sources are not read here`);
    if (sources.length > 0) copies.push(sources);
  }
  return copies;
}

/** Go's filepath.Match for one path segment, as a regular expression. */
function segmentRegExp(segment: string): RegExp {
  let pattern = '';
  for (let i = 0; i < segment.length; i++) {
    const char = segment[i]!;
    if (char === '*') pattern += '[^/]*';
    else if (char === '?') pattern += '[^/]';
    else if (char === '[') {
      const end = segment.indexOf(']', i + 1);
      const body = segment.slice(i + 1, end).replace(/^\^/, '!');
      pattern += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
      i = end;
    } else pattern += char.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${pattern}$`);
}

/** Go's filepath.Glob over the context: every existing path the pattern names. */
function glob(contextDir: string, pattern: string): string[] {
  let found = [''];
  for (const segment of path.posix.normalize(pattern).split('/').filter(Boolean)) {
    const regex = /[*?[]/.test(segment) ? segmentRegExp(segment) : undefined;
    found = found.flatMap((dir) => {
      if (!regex)
        return existsSync(path.join(contextDir, dir, segment)) ? [path.posix.join(dir, segment)] : [];
      try {
        return readdirSync(path.join(contextDir, dir))
          .filter((name) => regex.test(name))
          .map((name) => path.posix.join(dir, name));
      } catch {
        return [];
      }
    });
  }
  return found.filter(Boolean);
}

/** The ignore file Docker and skaffold read for this Dockerfile, relative to the context, or undefined. */
export function ignoreFile(contextDir: string, dockerfile: string): string | undefined {
  for (const candidate of [`${dockerfile}.dockerignore`, '.dockerignore']) {
    if (existsSync(path.join(contextDir, candidate))) return candidate;
  }
  return undefined;
}

/**
 * Every file (relative to the context) that a save of makes skaffold act on this artifact. `dockerfileText`
 * replaces the Dockerfile's content (the negative tests).
 */
export function artifactDependencies(
  root: string,
  artifact: Artifact,
  dockerfileText = readFileSync(path.join(root, artifact.context, artifact.dockerfile), 'utf8'),
): Set<string> {
  const contextDir = path.join(root, artifact.context);
  const ignoreName = ignoreFile(contextDir, artifact.dockerfile);
  const patterns = ignoreName ? readFileSync(path.join(contextDir, ignoreName), 'utf8') : '';
  const ignored = ignore().add(patterns);
  // Like skaffold: an ignored folder is not walked, unless an exception (`!...`) may take something back.
  const exceptions = patterns
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.startsWith('!'))
    .map((line) => path.posix.normalize(line.slice(1).replace(/^\/+/, '')));
  const mayKeep = (dir: string) => exceptions.some((exception) => `${exception}/`.startsWith(`${dir}/`));

  const files = new Set<string>();
  const walk = (relative: string) => {
    const absolute = path.join(contextDir, relative);
    if (statSync(absolute).isDirectory()) {
      if (relative !== '' && ignored.ignores(relative) && !mayKeep(relative)) return;
      for (const name of readdirSync(absolute)) walk(relative === '' ? name : `${relative}/${name}`);
    } else if (!ignored.ignores(relative)) files.add(relative);
  };
  for (const sources of copySources(dockerfileText)) {
    const matched = sources.flatMap((source) => {
      const clean = path.posix.normalize(source).replace(/^\/+/, '').replace(/\/$/, '') || '.';
      if (existsSync(path.join(contextDir, clean))) return [clean === '.' ? '' : clean];
      return glob(contextDir, clean);
    });
    if (matched.length === 0)
      throw new Error(`file pattern [${sources.join(' ')}] must match at least one file`);
    // A named source is taken whole: skaffold keeps the folder it starts from, ignored or not.
    for (const start of matched) {
      const absolute = path.join(contextDir, start);
      if (statSync(absolute).isDirectory()) {
        for (const name of readdirSync(absolute)) walk(start === '' ? name : `${start}/${name}`);
      } else walk(start);
    }
  }
  files.add(path.posix.normalize(artifact.dockerfile));
  files.delete('.dockerignore');
  return files;
}

/** What skaffold does to this artifact when `file` (relative to the context) is saved. */
export function decide(artifact: Artifact, dependencies: ReadonlySet<string>, file: string): Decision {
  if (!dependencies.has(file)) return { action: 'nothing' };
  for (const rule of artifact.sync) {
    if (!picomatch(rule.src, { dot: true })(file)) continue;
    const relative = rule.strip && file.startsWith(rule.strip) ? file.slice(rule.strip.length) : file;
    return { action: 'sync', to: path.posix.join(rule.dest, relative) };
  }
  return { action: 'rebuild' };
}

/** A decision as one word and a path, for readable assertions: `nothing`, `rebuild`, `sync /tmp/app/...`. */
export function describeDecision(decision: Decision): string {
  return decision.action === 'sync' ? `sync ${decision.to}` : decision.action;
}
