/** What `npm start` and the tests use of the router: start one, and read the Ingress it routes by. */
export { localBackends, startRouter, type Backend, type Router, type RouterOptions } from './router.js';
export { chooseLocation, readIngress, type IngressLocation, type IngressTable } from './ingress.js';
export { EndpointPool, type Endpoint, type ReadinessProbe } from './endpoints.js';
export { readPodLifecycles, type PodLifecycle } from './manifests.js';
