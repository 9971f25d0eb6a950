export { NatsServer, natsServerBin, natsServerVersion, type NatsServerOptions } from './server.js';
export { NatsCluster } from './cluster.js';
export { withNatsServer } from './fixture.js';
export { freePort } from './ports.js';
export { waitFor } from './wait.js';
