// undici's HTTP client without the rest of the package (issue 19). Its index also loads fetch, WebSocket,
// the HTTP cache and the mocks, which no request of Manifold makes: about 3 MB of an idle server. The parts
// used are loaded one by one, and `request` is put on the dispatchers as the index does (Dispatcher.prototype). Types are the package's own. Import undici from here only.
import type * as Undici from 'undici';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import connectorBuilder from 'undici/lib/core/connect.js';
import DispatcherClass from 'undici/lib/dispatcher/dispatcher.js';
import requestApi from 'undici/lib/api/api-request.js';

// Only `request`: the one call Manifold makes.
Object.assign((DispatcherClass as { prototype: object }).prototype, { request: requestApi });

export const Agent = AgentClass as typeof Undici.Agent;
export type Agent = Undici.Agent;
export const buildConnector = connectorBuilder as typeof Undici.buildConnector;
