import { describe, expect, it } from 'vitest';
import { ConfigError, defaults, env, readConfig, transportConfig } from './config.js';

const shape = {
  PORT: env.port(4000),
  HOST: env.host(),
  EVENT_BUS_URL: env.url(defaults.eventBusUrl),
  LOG_LEVEL: env.logLevel(),
  SUBSCRIBERS: env.subscribers(defaults.subscribers),
  ...transportConfig(),
};

describe('readConfig', () => {
  it('defaults to the course ports and Kubernetes Service names', () => {
    const config = readConfig(shape, {});
    expect(config.PORT).toBe(4000);
    expect(config.HOST).toBeUndefined(); // every interface, as a container needs
    expect(config.EVENT_BUS_URL).toBe('http://event-bus-srv:4005');
    expect(config.LOG_LEVEL).toBe('info');
    expect(config.SUBSCRIBERS).toEqual([
      { name: 'posts', url: 'http://posts-clusterip-srv:4000/events' },
      { name: 'comments', url: 'http://comments-srv:4001/events' },
      { name: 'query', url: 'http://query-srv:4002/events' },
      { name: 'moderation', url: 'http://moderation-srv:4003/events' },
    ]);
    expect(config).toMatchObject({
      EVENT_TRANSPORT: 'http',
      NATS_URL: 'nats://nats-srv:4222',
      NATS_STREAM: 'blog',
      NATS_REPLICAS: 1,
    });
  });

  it('takes a comma-separated list of NATS servers, each checked, and names a bad one', () => {
    const config = readConfig(shape, {
      NATS_URL: ' nats://nats-0:4222, nats://nats-1:4222,,tls://nats-2:4443 ',
    });
    expect(config.NATS_URL).toBe('nats://nats-0:4222,nats://nats-1:4222,tls://nats-2:4443');
    expect(() => readConfig(shape, { NATS_URL: 'nats://nats-0:4222,nats-1:4222' })).toThrow(
      /^Invalid configuration:\n {2}NATS_URL="nats:\/\/nats-0:4222,nats-1:4222": "nats-1:4222" must be a nats:\/\/, tls:\/\/, ws:\/\/ or wss:\/\/ URL$/,
    );
    expect(() => readConfig(shape, { NATS_URL: ' , ' })).toThrow(
      /NATS_URL=.*must name at least one NATS server/,
    );
  });

  it.each([
    ['1', 1],
    ['3', 3],
    ['5', 5],
  ])('takes NATS_REPLICAS=%s', (value, replicas) => {
    expect(readConfig(shape, { NATS_REPLICAS: value }).NATS_REPLICAS).toBe(replicas);
  });

  it.each(['nats://127.0.0.1:4222', 'tls://nats.example:4443', 'ws://nats:8080', 'wss://nats.example/ws'])(
    'takes NATS_URL=%s',
    (url) => {
      expect(readConfig(shape, { EVENT_TRANSPORT: 'nats', NATS_URL: url })).toMatchObject({
        EVENT_TRANSPORT: 'nats',
        NATS_URL: url,
      });
    },
  );

  it.each(['127.0.0.1', '0.0.0.0', '::', '::1'])('takes HOST=%s', (host) => {
    expect(readConfig(shape, { HOST: host }).HOST).toBe(host);
  });

  it('reads the variables and treats an empty one as unset', () => {
    const config = readConfig(shape, {
      PORT: '5000',
      EVENT_BUS_URL: 'http://localhost:4005/',
      LOG_LEVEL: '',
    });
    expect(config).toMatchObject({ PORT: 5000, EVENT_BUS_URL: 'http://localhost:4005', LOG_LEVEL: 'info' });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '40.5'],
    ['HOST', 'the-lan'],
    ['HOST', '300.0.0.1'],
    ['EVENT_BUS_URL', 'event-bus-srv:4005'],
    ['EVENT_BUS_URL', 'ftp://bus'],
    ['LOG_LEVEL', 'loud'],
    ['SUBSCRIBERS', 'posts'],
    ['SUBSCRIBERS', 'posts=http://a:1/events,posts=http://b:2/events'],
    ['SUBSCRIBERS', 'query=not a url'],
    ['EVENT_TRANSPORT', 'kafka'],
    ['NATS_URL', 'nats-srv:4222'],
    ['NATS_URL', 'http://nats-srv:4222'],
    ['NATS_URL', 'nats://'],
    ['NATS_REPLICAS', '0'],
    ['NATS_REPLICAS', '6'],
    ['NATS_REPLICAS', '2.5'],
    ['NATS_REPLICAS', 'three'],
    ['NATS_STREAM', 'blog.events'],
    ['NATS_STREAM', 'a b'],
    ['NATS_STREAM', 'x'.repeat(65)],
  ])('stops on a malformed %s=%s with a message naming it', (name, value) => {
    expect(() => readConfig(shape, { [name]: value })).toThrow(ConfigError);
    expect(() => readConfig(shape, { [name]: value })).toThrow(new RegExp(`${name}=`));
  });

  it('says each problem once', () => {
    expect(() => readConfig(shape, { NATS_URL: 'localhost:4222' })).toThrow(
      /^Invalid configuration:\n {2}NATS_URL="localhost:4222": must be a nats:\/\/, tls:\/\/, ws:\/\/ or wss:\/\/ URL$/,
    );
  });

  it('reports every malformed variable at once', () => {
    expect(() => readConfig(shape, { PORT: 'x', LOG_LEVEL: 'y' })).toThrow(/PORT=.*\n.*LOG_LEVEL=/s);
  });
});
