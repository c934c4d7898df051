#!/usr/bin/env escript
%% -*- erlang -*-
%% Runs ejabberd's own s2s certificate identity check,
%% xmpp_stream_pkix:authenticate/2 from the installed p1_xmpp (Debian's
%% ejabberd), over certificates given on stdin, one per line:
%%   HEX-DOMAIN <tab> PEM-FILE
%% (the domain's UTF-8 bytes in hexadecimal, which no terminal encoding
%% of standard input can alter)
%% and prints "true" or "false" for each, "crash" when the check raises
%% an exception (the stream process dies and the connection closes), and
%% "error" when the certificate cannot be decoded or the domain is not a
%% valid JID domain. The domain is
%% passed through jid:nameprep first, as ejabberd's stream code does
%% before it sets remote_server. Only the socket is replaced: a stand-in
%% xmpp_socket module hands the decoded certificate to the unmodified
%% code and reports OpenSSL's verify result as 0 (success), so what is
%% compared is the identity check alone.
main(_) ->
    Fake = "-module(xmpp_socket).\n"
           "-export([get_peer_certificate/2, get_verify_result/1]).\n"
           "get_peer_certificate(_, otp) -> {ok, get(cert)}.\n"
           "get_verify_result(_) -> 0.\n",
    {ok, Mod, Bin} = compile:forms(forms(Fake), [binary]),
    {module, Mod} = code:load_binary(Mod, "xmpp_socket.erl", Bin),
    {ok, _} = application:ensure_all_started(xmpp),
    ok = io:setopts([binary]),
    loop().

forms(Src) ->
    {ok, Tokens, _} = erl_scan:string(Src),
    split(Tokens, []).

split([], []) -> [];
split([{dot, _} = Dot | Rest], Acc) ->
    {ok, Form} = erl_parse:parse_form(lists:reverse([Dot | Acc])),
    [Form | split(Rest, [])];
split([T | Rest], Acc) -> split(Rest, [T | Acc]).

loop() ->
    case io:get_line("") of
        eof -> ok;
        Line ->
            [Hex, File] = binary:split(string:trim(Line, trailing, "\n"), <<"\t">>),
            io:format("~s~n", [judge(binary:decode_hex(Hex), File)]),
            loop()
    end.

judge(Domain, File) ->
    try
        {ok, PEM} = file:read_file(File),
        [{'Certificate', DER, _}] = public_key:pem_decode(PEM),
        put(cert, public_key:pkix_decode_cert(DER, otp)),
        LDomain = jid:nameprep(Domain),
        true = is_binary(LDomain),
        authenticate(LDomain)
    catch _:_ -> "error"
    end.

authenticate(Domain) ->
    State = #{xmlns => <<"jabber:server">>, socket => socket, remote_server => Domain},
    try xmpp_stream_pkix:authenticate(State, <<>>) of
        {ok, _} -> "true";
        {error, _, _} -> "false"
    catch _:_ -> "crash"
    end.
