-- Runs Prosody's own util.x509.verify_identity, from the installed
-- Prosody, over certificates given on stdin, one per line:
--   HOST <tab> SERVICE <tab> PEM-FILE
-- and prints "true" or "false" for each ("error" when LuaSec cannot load
-- the certificate or verify_identity raises). SERVICE is passed as given
-- ("xmpp-server" as mod_s2s_auth_certs passes it, "_xmpp-server" and
-- "_xmpp-client" as prosodyctl check does). The certificate is loaded
-- with LuaSec, as Prosody loads a peer's certificate.
local prosody = arg[1] or "/usr/lib/prosody"
package.path = prosody .. "/?.lua;" .. package.path
package.cpath = prosody .. "/?.so;" .. package.cpath
local x509 = require "ssl.x509"
local verify_identity = require "util.x509".verify_identity
for line in io.lines() do
	local host, service, file = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
	local f = assert(io.open(file, "rb"))
	local pem = f:read("a")
	f:close()
	local cert = x509.load(pem)
	local ok, accepted = false, nil
	if cert then
		ok, accepted = pcall(verify_identity, host, service, cert)
	end
	if ok then
		print(tostring(accepted == true))
	else
		print("error") -- LuaSec cannot load it, or verify_identity raised
	end
end
